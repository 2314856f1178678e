import pytest


@pytest.mark.browser
def test_the_start_page_renders_in_chromium(live_url, new_page, live):
    page = new_page()
    page.goto(live_url + "/")
    assert page.locator("h1").inner_text() == "Omnichannel customer service chat"
    assert page.get_by_role("link", name="Administration").is_visible()
