"""What an integration does with only HTTP and the schema, over a real socket (the live server): get a token,
add an exchange account, create a paper bot, start it, run it now, read the run, the analysis and its chart,
the trades, the insights and recommendations, pin the policy's minimum confidence, stop the bot."""

import requests

from tests.factories import import_eurusd

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Api(requests.Session):
    def __init__(self, base: str, token: str):
        super().__init__()
        self.base = base
        self.headers["Authorization"] = f"Token {token}"

    def request(self, method, path, **kwargs):
        return super().request(method, self.base + path, timeout=60, **kwargs)


def test_an_integration_drives_a_bot_over_http(live_server, transactional_db, alice, eager_tasks):
    import_eurusd()
    alice.set_password("correct horse battery staple")
    alice.save()
    schema = requests.get(f"{live_server.url}/api/schema/?format=json", timeout=30).json()
    assert "/api/v1/bots/{id}/run-now/" in schema["paths"]

    issued = requests.post(
        f"{live_server.url}/api/v1/auth/token/",
        json={"email": "ALICE@example.com", "password": "correct horse battery staple", "name": "my script"},
        timeout=30,
    )
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    http = Api(f"{live_server.url}/api/v1", token)

    account = http.post(
        "/exchange-accounts/",
        json={"label": "main", "exchange": "binance", "api_key": "KEY-abcdefghijkl", "secret": "SECRET-xyz"},
    )
    assert account.status_code == 201, account.text
    assert "KEY-abcdefghijkl" not in account.text and "SECRET-xyz" not in account.text

    bot = http.post(
        "/bots/",
        json={
            "name": "eur",
            "exchange": "sample",
            "symbol": "EUR/USD",
            "timeframe": "1h",
            "mode": "SIMULATION",
        },
    )
    assert bot.status_code == 201, bot.text
    bot_id = bot.json()["id"]
    assert bot.json()["symbol"] == "EUR/USD"

    assert http.post(f"/bots/{bot_id}/start/").json()["status"] == "RUNNING"
    ran = http.post(f"/bots/{bot_id}/run-now/")
    assert ran.status_code == 200, ran.text

    [run] = http.get("/runs/", params={"bot": bot_id}).json()["results"]
    assert run["status"] == "SUCCEEDED", run["error"]
    analysis = http.get(f"/analyses/{run['analysis']}/").json()
    assert analysis["recommendation"] in ("BUY", "SELL", "HOLD")
    chart = requests.get(analysis["chart_url"], headers=http.headers, timeout=30)
    assert chart.headers["content-type"] == "image/png"
    assert chart.content.startswith(PNG_SIGNATURE)

    trades = http.get("/trades/", params={"bot": bot_id})
    assert trades.status_code == 200 and "results" in trades.json()
    insights = http.get("/insights/", params={"bot": bot_id}).json()
    assert insights["total_analyses"] == 1
    assert "recommendations" in http.get("/recommendations/").json()

    pinned = http.patch(f"/bots/{bot_id}/policy/", json={"min_confidence": 80})
    assert pinned.status_code == 200, pinned.text
    assert (pinned.json()["min_confidence"], pinned.json()["pins"]) == (80, {"min_confidence": 80})

    assert http.post(f"/bots/{bot_id}/stop/").json()["status"] == "STOPPED"
    [session] = http.get("/sessions/", params={"bot": bot_id}).json()["results"]
    assert session["stop_reason"] == "stopped by its owner"
