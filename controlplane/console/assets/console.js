// SPDX-License-Identifier: Apache-2.0
// The console's own script: times in the browser's zone, select-all and
// copy buttons. Loaded from the console itself (the CSP allows no inline
// script); the pages work without it.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.title = el.getAttribute("datetime");
        el.textContent = d.toLocaleString();
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll('input[name="id"][form="bulk"]').forEach(function (c) { c.checked = all.checked; });
      });
    }
    document.querySelectorAll("button.copy").forEach(function (b) {
      b.addEventListener("click", function () {
        var el = document.getElementById(b.getAttribute("data-copy"));
        if (el && navigator.clipboard) {
          navigator.clipboard.writeText(el.textContent).then(function () { b.textContent = "Copied"; });
        }
      });
    });
  });
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
  document.addEventListener("htmx:sseMessage", function (e) { localTimes(e.target); });
})();
