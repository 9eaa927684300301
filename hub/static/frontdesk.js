// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Copy buttons (hidden until this script shows them).
  document.querySelectorAll(".js-copy").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target || !navigator.clipboard) { return; }
    button.hidden = false;
    var label = button.textContent;
    button.addEventListener("click", function () {
      var paragraphs = target.querySelectorAll("p");
      var text = target.tagName === "INPUT" ? target.value
        : paragraphs.length ? Array.prototype.map.call(paragraphs, function (p) { return p.textContent.trim(); }).join("\n\n")
        : target.textContent;
      navigator.clipboard.writeText(text.trim()).then(function () {
        button.textContent = "✓ " + label;
        setTimeout(function () { button.textContent = label; }, 2500);
      });
    });
  });
  // Select the whole private link on focus, so it is easy to copy by hand.
  document.querySelectorAll("input[readonly]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
  // Bring the error summary into view and focus for screen readers.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
  // Warn about too-large or too-many files before a long upload; the server checks again.
  document.querySelectorAll("form[data-max-file-bytes]").forEach(function (form) {
    var max = parseInt(form.getAttribute("data-max-file-bytes"), 10);
    var maxFiles = parseInt(form.getAttribute("data-max-files"), 10);
    form.querySelectorAll("input[type=file]").forEach(function (input) {
      input.addEventListener("change", function () {
        var tooBig = Array.prototype.filter.call(input.files, function (f) { return f.size > max; });
        var message = "";
        if (input.files.length > maxFiles) {
          message = form.getAttribute("data-too-many") || "";
        } else if (tooBig.length) {
          message = form.getAttribute("data-too-large") || "";
        }
        input.setCustomValidity(message);
        if (message) { input.reportValidity(); }
      });
    });
  });
})();
