// Draws each [data-plot] element from the JSON figure of the <script> it names, sized to its box, and marks it
// data-rendered once drawn (the browser tests and the screenshot command wait for that).
document.querySelectorAll("[data-plot]").forEach(function (box) {
  var figure = JSON.parse(document.getElementById(box.dataset.plot).textContent);
  var config = { responsive: true, displaylogo: false, displayModeBar: false };
  Plotly.newPlot(box, figure.data, Object.assign({ autosize: true }, figure.layout), config).then(function () {
    box.setAttribute("data-rendered", "");
  });
});
