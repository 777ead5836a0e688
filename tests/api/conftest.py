import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken


def client_of(user) -> APIClient:
    client = APIClient()
    _, plain = ApiToken.issue(user, "tests")
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


@pytest.fixture
def api(alice) -> APIClient:
    """Alice's API client, authenticated with a token of hers."""
    return client_of(alice)


@pytest.fixture
def charlie_api(charlie) -> APIClient:
    return client_of(charlie)
