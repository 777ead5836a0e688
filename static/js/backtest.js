// A running backtest's progress bar, moved on from its status JSON every two seconds; the page is loaded
// again once the backtest is over, to show its report or its error.
(function () {
  var box = document.querySelector("[data-backtest-status]");
  if (!box) return;
  var bar = document.getElementById("backtest-progress");
  var cycles = document.getElementById("backtest-cycles");
  var badge = document.getElementById("backtest-status");
  function poll() {
    fetch(box.dataset.backtestStatus, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (state) {
        if (state.status === "DONE" || state.status === "FAILED") {
          window.location.reload();
          return;
        }
        badge.textContent = state.status_display;
        badge.className = "badge status-" + state.status.toLowerCase();
        if (state.cycles_total) {
          bar.max = state.cycles_total;
          bar.value = state.cycles_done;
          cycles.textContent = state.cycles_done === state.cycles_total
            ? state.cycles_total + " cycles run; writing the report…"
            : state.cycles_done + " of " + state.cycles_total + " cycles";
        }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
