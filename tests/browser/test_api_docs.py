"""Swagger UI (/api/docs/) in a real browser under the Content-Security-Policy: it draws the API's operations
from the schema, with nothing refused (its files come from drf-spectacular-sidecar, its start-up script is
a file); signed out, with the production default, the browser is sent to sign in."""

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from automation.browser import chromium, csp_violations, log_in


def test_swagger_ui_renders_under_the_csp_behind_login(live_server, transactional_db, alice, settings):
    settings.API_DOCS_PUBLIC = False
    driver = chromium(1280)
    try:
        driver.get(live_server.url + "/api/docs/")
        assert driver.current_url.startswith(live_server.url + "/accounts/login/?next=/api/docs/")
        log_in(driver, live_server.url, alice)
        driver.get(live_server.url + "/api/docs/")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"), "Swagger UI drew no operation"
        )
        title = driver.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
        assert title.startswith("TradingAI API")
        paths = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert "/api/v1/bots/{id}/policy/" in {p.replace("\u200b", "") for p in paths}
        assert csp_violations(driver) == []
    finally:
        driver.quit()
