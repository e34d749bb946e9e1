/* tutor: the copy button of a console block copies its commands only (data-copy), not the
   prompts and outputs mdBook's own button would copy. Runs before mdBook's clipboard handler
   (capture phase) and stops it for such blocks. */
(function () {
  if (window.tutorCopy) return;
  window.tutorCopy = true;
  function fallback(text) {
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  function tell(button, msg) {
    if (button.firstChild) button.firstChild.innerText = msg;
    button.className = 'clip-button tooltipped';
  }
  document.addEventListener('click', function (e) {
    var button = e.target.closest ? e.target.closest('.clip-button') : null;
    var block = button ? button.closest('[data-copy]') : null;
    if (!block) return;
    e.stopImmediatePropagation();
    e.preventDefault();
    var text = block.getAttribute('data-copy');
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { tell(button, 'Copied!'); },
        function () { tell(button, fallback(text) ? 'Copied!' : 'Clipboard error!'); });
    } else {
      tell(button, fallback(text) ? 'Copied!' : 'Clipboard error!');
    }
  }, true);
})();
