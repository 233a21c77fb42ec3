"""Interop: an independent OAuth 2.0 / OpenID Connect client library (authlib, over
requests) performs discovery, obtains a token with client_credentials and validates it
as an RFC 9068 access token against the JWKS from jwks_uri, and runs the authorization
code flow with PKCE as a relying party, validating the ID token. Started by tests/interop/run.sh, which
passes the server and the registered client in the environment."""

import os
import re

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator

ISSUER = os.environ["INTEROP_ISSUER"]
CLIENT_ID = os.environ["INTEROP_CLIENT_ID"]
CLIENT_SECRET = os.environ["INTEROP_CLIENT_SECRET"]
AUDIENCE = os.environ["INTEROP_AUDIENCE"]


@pytest.fixture(scope="module")
def metadata():
    # RFC 8414 §3 and OIDC Discovery §4 serve the same document.
    oauth = requests.get(f"{ISSUER}/.well-known/oauth-authorization-server", timeout=5)
    oidc = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=5)
    assert oauth.status_code == 200 and oidc.status_code == 200
    assert oauth.json() == oidc.json()
    doc = oauth.json()
    assert doc["issuer"] == ISSUER, "the issuer must match byte for byte"
    assert "client_credentials" in doc["grant_types_supported"]
    return doc


class Validator(JWTBearerTokenValidator):
    def __init__(self, jwks, **kwargs):
        super().__init__(**kwargs)
        self.jwks = jwks

    def get_jwks(self):
        return self.jwks


def validator(metadata):
    jwks = requests.get(metadata["jwks_uri"], timeout=5).json()
    return Validator(jwks, issuer=metadata["issuer"], resource_server=AUDIENCE)


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_token_validates_as_rfc_9068_access_token(metadata, auth_method):
    session = OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="read",
        token_endpoint_auth_method=auth_method,
    )
    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read"
    v = validator(metadata)
    claims = v.authenticate_token(token["access_token"])
    v.validate_token(claims, scopes=["read"], request=None)
    assert claims["client_id"] == CLIENT_ID
    assert claims["sub"] == CLIENT_ID
    assert claims["aud"] == AUDIENCE
    assert claims.header["typ"] == "at+jwt"


def test_a_wrong_secret_is_refused(metadata):
    session = OAuth2Session(CLIENT_ID, "not-the-secret")
    with pytest.raises(Exception) as failure:
        session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert "invalid_client" in str(failure.value)


@pytest.mark.parametrize(
    "case",
    ["expired", "not_yet_valid", "unknown_kid", "bad_signature", "wrong_issuer",
     "wrong_audience", "alg_none", "hs256_key_confusion", "wrong_typ"],
)
def test_authlib_rejects_every_negative_test_token(metadata, case):
    answer = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials", "client_id": "negative-tests", "test_case": case},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["test_case"] == case
    v = validator(metadata)
    with pytest.raises(InvalidTokenError):
        claims = v.authenticate_token(answer.json()["access_token"])
        v.validate_token(claims, scopes=[], request=None)


def _hidden(page, name):
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"the sign-in page has no {name} field"
    return match.group(1)


def test_authorization_code_with_pkce_and_a_verified_id_token(metadata):
    """OpenID Connect Core §3.1 as authlib's relying party runs it: PKCE S256, state and
    nonce, the sign-in page filled in by a script, the code exchanged by authlib, and the
    ID token validated by authlib's CodeIDToken (signature from jwks_uri, iss, aud,
    nonce, exp, at_hash)."""
    assert "S256" in metadata["code_challenge_methods_supported"]
    redirect_uri = "http://127.0.0.1:9/callback"
    rp = OAuth2Session(
        "authlib-rp",
        redirect_uri=redirect_uri,
        scope="openid profile",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = rp.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    browser = requests.Session()
    page = browser.get(url, allow_redirects=False, timeout=5)
    assert page.status_code == 200, page.text
    form = {
        "request": _hidden(page.text, "request"),
        "csrf": _hidden(page.text, "csrf"),
        "username": "ivy",
        "claims": '{"roles": ["tester"]}',
    }
    signin_url = metadata["authorization_endpoint"].rsplit("/", 1)[0] + "/signin"
    done = browser.post(signin_url, data=form, allow_redirects=False, timeout=5)
    assert done.status_code == 303, done.text
    location = done.headers["Location"]
    assert location.startswith(redirect_uri)
    token = rp.fetch_token(
        metadata["token_endpoint"],
        authorization_response=location,
        code_verifier=verifier,
        state=state,
    )
    assert token["token_type"] == "Bearer"
    jwks = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=5).json())
    claims = jwt.decode(
        token["id_token"],
        jwks,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": ISSUER}},
        claims_params={
            "nonce": nonce,
            "client_id": "authlib-rp",
            "access_token": token["access_token"],
        },
    )
    claims.validate()
    assert claims["sub"] == "ivy"
    assert claims["preferred_username"] == "ivy"
    assert claims["roles"] == ["tester"]
    assert "at_hash" in claims
    info = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    )
    assert info.status_code == 200
    assert info.json()["sub"] == "ivy"
    # The same authorization response again: refused, and the access token the first
    # redemption bought is revoked (RFC 6749 §4.1.2).
    with pytest.raises(OAuthError) as replay:
        rp.fetch_token(
            metadata["token_endpoint"],
            authorization_response=location,
            code_verifier=verifier,
            state=state,
        )
    assert replay.value.error == "invalid_grant"
    info = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    )
    assert info.status_code == 401
    assert 'error="invalid_token"' in info.headers["WWW-Authenticate"]
