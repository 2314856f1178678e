// Site-wide behaviour of the server-rendered pages, kept out of the HTML so that the
// Content-Security-Policy needs no inline scripts: a <select data-autosubmit> submits its form.
document.addEventListener("change", (event) => {
  const select = event.target.closest ? event.target.closest("select[data-autosubmit]") : null;
  if (select && select.form) select.form.submit();
});
