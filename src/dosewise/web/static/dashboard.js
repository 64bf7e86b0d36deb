/* dosewise dashboard: draws the Vega-Lite charts whose specs the page carries, and refreshes the
   live parts of the page (elements listening for "dw:changed") when the ledger records an event. */
(function () {
  "use strict";
  var options = { renderer: "svg", actions: { export: true, source: false, compiled: false, editor: false } };

  function embedCharts(root) {
    if (!window.vegaEmbed) { return; }
    root.querySelectorAll("[data-spec]").forEach(function (el) {
      if (el.dataset.embedded) { return; }
      var source = document.getElementById(el.dataset.spec);
      if (!source) { return; }
      el.dataset.embedded = "1";
      window.vegaEmbed(el, JSON.parse(source.textContent), options).then(function () {
        el.dataset.rendered = "1";
      }).catch(function (err) {
        el.textContent = "This chart could not be drawn (" + err + "); the table has the same figures.";
      });
    });
  }

  function listen() {
    var url = document.body.dataset.events;
    if (!url || !window.EventSource) { return; }
    var timer = null;
    var stream = new EventSource(url);
    stream.addEventListener("open", function () { document.body.dataset.live = "on"; });
    stream.addEventListener("error", function () { document.body.dataset.live = "retrying"; });
    stream.addEventListener("ledger", function (e) {
      document.body.dataset.lastEvent = e.lastEventId;
      clearTimeout(timer);
      timer = setTimeout(function () {
        if (window.htmx) { window.htmx.trigger(document.body, "dw:changed"); }
      }, 150);
    });
    window.addEventListener("pagehide", function () { stream.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    embedCharts(document);
    listen();
  });
  document.addEventListener("htmx:afterSettle", function (e) { embedCharts(e.target); });
}());
