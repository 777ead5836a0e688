// Draws each [data-price-chart] element from the Plotly figure its URL answers (automation/price_chart.py), or
// writes why there is none, and marks it data-rendered either way (the browser tests and the screenshot command
// wait for that, as for static/js/plots.js).
document.querySelectorAll("[data-price-chart]").forEach(function (box) {
  function say(message) {
    box.textContent = message;
    box.classList.add("muted", "plot-message");
    box.setAttribute("data-rendered", "");
  }
  fetch(box.dataset.priceChart, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) {
      if (!response.ok) {
        throw new Error("The price chart could not be loaded (" + response.status + ").");
      }
      return response.json();
    })
    .then(function (figure) {
      if (figure.empty) {
        say(figure.empty);
        return;
      }
      var config = { responsive: true, displaylogo: false, displayModeBar: false };
      var layout = Object.assign({ autosize: true }, figure.layout);
      return Plotly.newPlot(box, figure.data, layout, config).then(function () {
        box.setAttribute("data-rendered", "");
      });
    })
    .catch(function (error) {
      say(error.message);
    });
});
