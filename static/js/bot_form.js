// The bot form shows a field only where it applies: the exchange account and the live confirmation for a
// live bot, the paper balance for a paper one, the TradingView URL for that chart source. Each such input
// names its condition as data-show-when="FIELD=VALUE" (automation/forms.py); without JavaScript every
// field shows, and the server checks them all the same.
(function () {
  var dependents = document.querySelectorAll("[data-show-when]");
  function update() {
    dependents.forEach(function (input) {
      var rule = input.dataset.showWhen.split("=");
      var control = document.querySelector("[name='" + rule[0] + "']");
      var field = input.closest(".field");
      if (control && field) {
        field.hidden = control.value !== rule[1];
      }
    });
  }
  document.querySelectorAll("select").forEach(function (select) {
    select.addEventListener("change", update);
  });
  update();
})();
