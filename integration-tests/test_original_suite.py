"""The three cases of the original's integration-tests module (AuthIntegrationTest, PatientIntegrationTest)."""

from __future__ import annotations

import httpx
from pm_e2e.target import Target


class TestAuthIntegration:
    """The original's AuthIntegrationTest."""

    def test_valid_login_returns_token(self, client: httpx.Client, target: Target) -> None:
        """shouldReturnOKWithValidToken: the seed user logs in and gets a token."""
        response = client.post("/auth/login", json={"email": target.email, "password": target.password})

        assert response.status_code == 200
        token = response.json()["token"]
        assert isinstance(token, str)
        assert token.count(".") == 2

    def test_invalid_login_returns_401(self, client: httpx.Client) -> None:
        """shouldReturnUnauthorizedOnInvalidLogin: a wrong password gives 401."""
        response = client.post("/auth/login", json={"email": "invalid_user@test.com", "password": "wrongpassword"})

        assert response.status_code == 401


class TestPatientIntegration:
    """The original's PatientIntegrationTest."""

    def test_patient_list_with_valid_token_returns_200_and_json_array(
        self, client: httpx.Client, auth: dict[str, str]
    ) -> None:
        """shouldReturnPatientWithValidToken: GET /api/patients with a token gives 200 and a JSON array."""
        response = client.get("/api/patients", headers=auth)

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert isinstance(response.json(), list)
