// afterparty's console: a page showing something under way follows it. Every few seconds the
// page is read again and its main part replaced, unless the person is writing in a form;
// once nothing runs any more, it stops. Without JavaScript, reloading the page shows the same.
(function () {
  "use strict";

  function live() {
    return document.querySelector("main[data-refresh]");
  }

  function writing() {
    var active = document.activeElement;
    if (active && active.closest("main") && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    var fields = document.querySelectorAll("main textarea, main input, main select");
    return Array.prototype.some.call(fields, function (field) {
      return field.type === "radio" || field.type === "checkbox"
        ? field.checked !== field.defaultChecked
        : field.type !== "hidden" && field.value !== field.defaultValue;
    });
  }

  function later() {
    var main = live();
    if (main) {
      window.setTimeout(refresh, 1000 * (Number(main.getAttribute("data-refresh")) || 5));
    }
  }

  function refresh() {
    if (writing()) {
      later();
      return;
    }
    window.fetch(window.location.href, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (!response.ok || response.redirected) {
          window.location.reload();  // signed out, or an error page: show it as it is
          return;
        }
        return response.text().then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
          var main = live();
          if (fresh && main && !writing()) {
            main.replaceWith(document.importNode(fresh, true));
          }
          later();
        });
      })
      .catch(later);
  }

  later();
}());
