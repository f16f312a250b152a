// fallback console: the editor's small script. It decides nothing: it
// asks the server (the processor's rules) and shows the answer. Without
// it every page still works, by full round trips.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // A page with errors: take the focus to their summary, so a screen
  // reader announces it and its links lead to each field.
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  });

  // The delay "as you type": the rules' message for the value, from
  // /check/delay, in the field's error line.
  var timers = {};
  document.addEventListener("input", function (e) {
    var input = e.target;
    if (!input.matches || !input.matches("[data-check-delay]")) return;
    var step = input.getAttribute("data-check-delay");
    clearTimeout(timers[step]);
    timers[step] = setTimeout(function () {
      var url = "/check/delay?step=" + encodeURIComponent(step) + "&value=" + encodeURIComponent(input.value);
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) {
          if (!answer) return;
          var out = document.getElementById(input.id + "-error");
          if (out) out.textContent = answer.message;
          if (answer.message) input.setAttribute("aria-invalid", "true");
          else input.removeAttribute("aria-invalid");
        })
        .catch(function () {});
    }, 250);
  });

  // A step's channel, sender, template or mapping changed: the server
  // renders the steps again (the choices of the channel, the preview)
  // and they are swapped in, keeping the focus where it was.
  var pending = null;
  document.addEventListener("change", function (e) {
    var el = e.target;
    if (!el.matches || !el.matches("[data-refresh]")) return;
    var form = el.form, steps = document.getElementById("steps");
    if (!form || !steps) return;
    if (pending) pending.abort();
    pending = new AbortController();
    var body = new URLSearchParams(new FormData(form));
    fetch(steps.getAttribute("data-steps-url"), {
      method: "POST", body: body, credentials: "same-origin", signal: pending.signal,
      headers: { "Content-Type": "application/x-www-form-urlencoded" }
    })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var active = document.activeElement, id = active && active.id;
        var typed = active && "value" in active ? active.value : null;
        steps.innerHTML = html;
        if (id && steps.querySelector("#" + CSS.escape(id))) {
          var again = document.getElementById(id);
          if (typed !== null && again.tagName !== "SELECT" && again.type !== "hidden") again.value = typed;
          again.focus();
        }
      })
      .catch(function () {});
  });
})();
