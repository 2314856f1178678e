// The admin's own behaviour, kept out of the HTML so that the Content-Security-Policy needs no
// inline scripts (loaded by the ModelAdmins that use it, through their Media):
// a <textarea data-select-on-click> selects its text when clicked, and a <button data-copy="id">
// copies the text of the element with that id to the clipboard, then shows its data-copied label.
document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;
  const field = target.closest("textarea[data-select-on-click]");
  if (field) field.select();
  const button = target.closest("button[data-copy]");
  const source = button ? document.getElementById(button.dataset.copy) : null;
  if (!source) return;
  source.select();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.value);
  } else {
    document.execCommand("copy");
  }
  button.textContent = button.dataset.copied;
});
