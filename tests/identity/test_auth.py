"""Login, refresh rotation and reuse detection, logout, me, register (in-process app, real SQLite)."""

from __future__ import annotations

import asyncio
import time

import jwt
from identity_helpers import inside_one_window

from intentd.experience import audit
from intentd.experience.users import create_user, get_user_by_email, set_disabled

PASSWORD = "correct horse battery staple"


async def _user(mini, email="alice@example.com", tenant="acme", role="user"):
    return await create_user(mini.state.store, email=email, password=PASSWORD, tenant_id=tenant, role=role)


async def _login(mini, email="alice@example.com", password=PASSWORD):
    return await mini.client.post("/api/auth/login", json={"email": email, "password": password})


async def test_login_issues_a_verified_access_token_and_me_answers(mini_app):
    mini = await mini_app()
    user = await _user(mini)
    response = await _login(mini, email="  Alice@Example.com ")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60
    claims = jwt.decode(body["access_token"], mini.state.settings.secret_key, algorithms=["HS256"])
    assert claims["sub"] == user.id and claims["tid"] == "acme" and claims["role"] == "user"
    assert claims["typ"] == "access" and claims["exp"] - claims["iat"] == 15 * 60 and claims["jti"]
    me = await mini.client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {
        "id": user.id,
        "email": "alice@example.com",
        "tenant_id": "acme",
        "role": "user",
        "created_at": user.created_at,
    }


async def test_unknown_user_wrong_password_and_disabled_user_get_the_same_answer(mini_app):
    mini = await mini_app()
    user = await _user(mini)
    await _user(mini, email="bob@example.com")
    bob = await get_user_by_email(mini.state.store, "bob@example.com")
    await set_disabled(
        mini.state.store,
        mini.state.bus,
        bob,
        True,
        audit_event=audit.AuditEvent(action="user.disabled", tenant_id="acme"),
    )
    answers = [
        await _login(mini, email="nobody@example.com"),
        await _login(mini, password="wrong password"),
        await _login(mini, email="bob@example.com"),
    ]
    for response in answers:
        assert response.status_code == 401
        body = response.json()
        assert body["code"] == "invalid_credentials"
        assert response.headers["content-type"] == "application/problem+json"
    assert len({r.json()["detail"] for r in answers}) == 1
    assert user.id


async def test_bad_tokens_are_401_unauthorized(mini_app):
    mini = await mini_app()
    user = await _user(mini)
    settings = mini.state.settings
    now = int(time.time())
    base = {
        "sub": user.id,
        "tid": "acme",
        "role": "admin",
        "jti": "j1",
        "iat": now,
        "exp": now + 60,
        "typ": "access",
    }
    forged = [
        "not-a-jwt",
        jwt.encode(base, "another secret key of enough length", algorithm="HS256"),
        jwt.encode({**base, "exp": now - 1}, settings.secret_key, algorithm="HS256"),
        jwt.encode({**base, "typ": "refresh"}, settings.secret_key, algorithm="HS256"),
        jwt.encode({k: v for k, v in base.items() if k != "jti"}, settings.secret_key, algorithm="HS256"),
        jwt.encode({**base, "tid": "other"}, settings.secret_key, algorithm="HS256"),
        jwt.encode({**base, "sub": "no-such-user"}, settings.secret_key, algorithm="HS256"),
        jwt.encode(base, None, algorithm="none"),
    ]
    for token in forged:
        response = await mini.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.json()["code"] == "unauthorized"
    assert (await mini.client.get("/api/auth/me")).json()["code"] == "unauthorized"


async def test_role_in_the_token_is_not_trusted_over_the_user_row(mini_app):
    mini = await mini_app()
    user = await _user(mini)
    settings = mini.state.settings
    now = int(time.time())
    claims = {
        "sub": user.id,
        "tid": "acme",
        "role": "admin",
        "jti": "x",
        "iat": now,
        "exp": now + 60,
        "typ": "access",
    }
    token = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    me = await mini.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "user"


async def test_refresh_rotates_and_reuse_revokes_the_family(mini_app):
    mini = await mini_app()
    await _user(mini)
    first = (await _login(mini)).json()
    second = await mini.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    third = (
        await mini.client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    ).json()
    # The first token was rotated already: presenting it again is reuse.
    reused = await mini.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["code"] == "token_reused"
    # ... which revoked the whole family, including the newest token.
    after = await mini.client.post("/api/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert after.status_code == 401 and after.json()["code"] == "unauthorized"
    events, _ = await audit.query(mini.state.store, "acme", action="token.reused")
    assert len(events) == 1
    # Another login (another family) is unaffected.
    assert (await _login(mini)).status_code == 200


async def test_refresh_rejects_unknown_tokens(mini_app):
    mini = await mini_app()
    response = await mini.client.post("/api/auth/refresh", json={"refresh_token": "made-up"})
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


async def test_logout_revokes_the_access_token_and_the_refresh_family(mini_app):
    mini = await mini_app()
    await _user(mini)
    pair = (await _login(mini)).json()
    other_login = (await _login(mini)).json()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    response = await mini.client.post("/api/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=headers)
    assert response.status_code == 204
    assert (await mini.client.get("/api/auth/me", headers=headers)).status_code == 401
    again = await mini.client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 401
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    announced = [m for m in mini.state.published if m["type"] == "token.revoked"]
    assert [(m["jti"], m["family_id"]) for m in announced] == [(claims["jti"], claims["fam"])]
    # Another login of the same user is another family: untouched.
    other = {"Authorization": f"Bearer {other_login['access_token']}"}
    assert (await mini.client.get("/api/auth/me", headers=other)).status_code == 200


async def test_logout_without_a_body_ends_the_whole_login(mini_app):
    """Every access token of the login goes, also ones issued by refreshing; its refresh token too."""
    mini = await mini_app()
    await _user(mini)
    first = (await _login(mini)).json()
    second = (await mini.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    response = await mini.client.post("/api/auth/logout", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert response.status_code == 204
    for token in (first["access_token"], second["access_token"]):
        assert (await mini.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    refreshed = await mini.client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert refreshed.status_code == 401


async def test_reuse_also_revokes_the_familys_live_access_tokens(mini_app):
    mini = await mini_app()
    await _user(mini)
    first = (await _login(mini)).json()
    second = (await mini.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    live = {"Authorization": f"Bearer {second['access_token']}"}
    assert (await mini.client.get("/api/auth/me", headers=live)).status_code == 200
    reused = await mini.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.json()["code"] == "token_reused"
    assert (await mini.client.get("/api/auth/me", headers=live)).status_code == 401


async def test_concurrent_refreshes_with_one_token_yield_one_pair(mini_app):
    mini = await mini_app()
    await _user(mini)
    pair = (await _login(mini)).json()
    answers = await asyncio.gather(
        *(mini.client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}) for _ in range(4))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 401, 401, 401]
    assert {a.json()["code"] for a in answers if a.status_code == 401} == {"token_reused"}


async def test_logout_is_seen_by_another_process_within_a_second(mini_app, tmp_path):
    """Two apps on one store: the revocation cache of the other expires within 1 s."""
    mini = await mini_app()
    await _user(mini)
    pair = (await _login(mini)).json()
    other = await mini_app(data_dir=mini.state.settings.data_dir)
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await other.client.get("/api/auth/me", headers=headers)).status_code == 200
    await mini.client.post("/api/auth/logout", headers=headers)
    deadline = time.monotonic() + 1.5
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = (await other.client.get("/api/auth/me", headers=headers)).status_code
    assert status == 401


async def test_disabled_user_loses_access_at_once(mini_app):
    mini = await mini_app()
    user = await _user(mini)
    pair = (await _login(mini)).json()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await mini.client.get("/api/auth/me", headers=headers)).status_code == 200
    await set_disabled(
        mini.state.store,
        mini.state.bus,
        user,
        True,
        audit_event=audit.AuditEvent(action="user.disabled", tenant_id="acme"),
    )
    assert (await mini.client.get("/api/auth/me", headers=headers)).status_code == 401
    refreshed = await mini.client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401
    assert {"type": "user.disabled", "user_id": user.id} in mini.state.published


async def test_register_is_closed_by_default(mini_app):
    mini = await mini_app()
    response = await mini.client.post(
        "/api/auth/register", json={"email": "x@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403 and response.json()["code"] == "registration_closed"


async def test_register_lands_in_the_configured_tenant_as_user(mini_app):
    mini = await mini_app(open_registration=True, registration_tenant="public")
    response = await mini.client.post(
        "/api/auth/register", json={"email": "New@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "new@example.com" and body["tenant_id"] == "public" and body["role"] == "user"
    # A tenant or role in the body is rejected, never honoured.
    sneaky = await mini.client.post(
        "/api/auth/register",
        json={"email": "y@example.com", "password": PASSWORD, "role": "admin", "tenant_id": "acme"},
    )
    assert sneaky.status_code == 422 and sneaky.json()["code"] == "invalid_request"
    taken = await mini.client.post(
        "/api/auth/register", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert taken.status_code == 409 and taken.json()["code"] == "email_taken"
    weak = await mini.client.post("/api/auth/register", json={"email": "z@example.com", "password": "short"})
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    assert (await _login(mini, email="new@example.com")).status_code == 200


async def test_login_failures_are_limited_per_account_with_retry_after(mini_app):
    inside_one_window()
    mini = await mini_app()
    await _user(mini)
    for _ in range(5):
        assert (await _login(mini, password="wrong password")).status_code == 401
    blocked = await _login(mini)  # even the right password: the account is locked for the window
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    other = await _user(mini, email="carol@example.com")
    assert (await _login(mini, email="carol@example.com")).status_code == 200 and other


async def test_login_failures_are_limited_per_address(mini_app):
    inside_one_window()
    mini = await mini_app(login_failures_per_ip=3, login_failures_per_account=100)
    for n in range(3):
        assert (await _login(mini, email=f"guess{n}@example.com")).status_code == 401
    blocked = await _login(mini, email="guess9@example.com")
    assert blocked.status_code == 429 and blocked.json()["code"] == "rate_limited"
    assert int(blocked.headers["retry-after"]) >= 1
