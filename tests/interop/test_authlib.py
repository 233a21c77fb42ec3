"""Interop: an independent OAuth 2.0 client library (authlib, over requests) performs
discovery, obtains a token with client_credentials, and validates it as an RFC 9068
access token against the JWKS from jwks_uri. Started by tests/interop/run.sh, which
passes the server and the registered client in the environment."""

import os

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
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
