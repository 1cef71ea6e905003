"""Building botocore KMS clients: the way boto3 users expect, and sealed
off from the user's AWS configuration for the local KMS."""

from __future__ import annotations

import os
from typing import Any

import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES
from botocore.exceptions import InvalidRegionError

from ._exceptions import (
    ConfigurationError,
    KmsReEncryptError,
    translate_botocore_error,
)
from ._version import __version__

__all__ = ["create_kms_client", "isolated_kms_client"]

_USER_AGENT = Config(user_agent_extra=f"kms-reencrypt/{__version__}")
# For the clients behind the facade. build_request checks every
# ReEncrypt member more strictly than botocore's client-side parameter
# validation, which would repeat the work at about 30 microseconds a call
# (docs/performance.md). A caller's Config(parameter_validation=True)
# turns it back on.
_FACADE_DEFAULTS = _USER_AGENT.merge(Config(parameter_validation=False))

#: Credentials the local KMS accepts; they are never sent to AWS.
LOCAL_ACCESS_KEY = "AKIALOCALKMSEXAMPLE0"
LOCAL_SECRET_KEY = "local-kms-secret-key-not-a-real-secret"  # noqa: S105


# Every session variable with its environment variable and config file
# key removed: botocore then sees only defaults and what we set.
_SEALED_VARIABLES = {
    name: (None, None, default, converter)
    for name, (_, _, default, converter) in (
        BOTOCORE_DEFAUT_SESSION_VARIABLES.items()
    )
}
_SEALED_VARIABLES["ignore_configured_endpoint_urls"] = (None, None, True, None)


def _merged(config: Config | None, base: Config = _USER_AGENT) -> Config:
    if config is None:
        return base
    if not isinstance(config, Config):
        raise ConfigurationError(
            f"config must be a botocore.config.Config, got "
            f"{type(config).__name__}.",
            option="config",
        )
    return base.merge(config)


def create_kms_client(
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    profile_name: str | None = None,
    session: Any = None,
    config: Config | None = None,
) -> BaseClient:
    """Create a botocore KMS client with the standard credential chain.

    botocore's parameter validation is off unless ``config`` turns it on
    (see ``kms_reencrypt.client``).

    Args:
        region_name: The AWS Region; botocore's usual lookup when None.
        endpoint_url: An endpoint to use instead of the Region's.
        profile_name: A profile from the AWS config files.
        session: A ``botocore.session.Session`` or a ``boto3.Session``
            to create the client from.
        config: A botocore ``Config``, merged over this library's.

    Returns:
        A botocore KMS client.

    Raises:
        ConfigurationError: Conflicting options, an unknown profile or no
            Region.
    """
    merged = _merged(config, _FACADE_DEFAULTS)
    _check_text_options(
        region_name=region_name,
        endpoint_url=endpoint_url,
        profile_name=profile_name,
    )
    if session is not None and profile_name is not None:
        raise ConfigurationError(
            "profile_name and session cannot be combined: create the "
            "session with the profile instead.",
            option="profile_name",
        )
    try:
        if session is None:
            session = botocore.session.Session(profile=profile_name)
        if isinstance(session, botocore.session.Session):
            kms: BaseClient = session.create_client(
                "kms",
                region_name=region_name,
                endpoint_url=endpoint_url,
                config=merged,
            )
            return kms
        if callable(getattr(session, "client", None)):
            # A boto3.Session: it resolves credentials the boto3 way.
            client: BaseClient = session.client(
                "kms",
                region_name=region_name,
                endpoint_url=endpoint_url,
                config=merged,
            )
            return client
    except Exception as error:
        refused = _refused(error, region_name, endpoint_url)
        if refused is None:
            raise
        raise refused from error
    raise ConfigurationError(
        "session must be a botocore.session.Session or a boto3.Session, got "
        f"{type(session).__name__}.",
        option="session",
    )


def isolated_kms_client(
    *,
    endpoint_url: str,
    region_name: str,
    config: Config | None = None,
) -> BaseClient:
    """Create a KMS client that reads nothing of the user's AWS setup.

    Used for the local KMS: credentials are dummies, and the config and
    credentials files, profile, environment credentials and configured
    endpoint URLs are all ignored, so that a test can never reach a real
    account by accident.

    Args:
        endpoint_url: The local endpoint.
        region_name: The Region the local KMS serves.
        config: A botocore ``Config``, merged over this library's.

    Returns:
        A botocore KMS client with dummy credentials.
    """
    _check_text_options(region_name=region_name, endpoint_url=endpoint_url)
    merged = _merged(config)
    session = botocore.session.Session(session_vars=_SEALED_VARIABLES)
    session.set_config_variable("config_file", os.devnull)
    session.set_config_variable("credentials_file", os.devnull)
    session.set_config_variable("region", region_name)
    session.set_credentials(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY)

    try:
        kms: BaseClient = session.create_client(
            "kms",
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=merged,
        )
    except Exception as error:
        refused = _refused(error, region_name, endpoint_url)
        if refused is None:
            raise
        raise refused from error

    return kms


def _check_text_options(**options: object) -> None:
    for option, value in options.items():
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"{option} must be a str or None, got {type(value).__name__}.",
                option=option,
            )


def _refused(
    error: Exception, region_name: str | None, endpoint_url: str | None
) -> KmsReEncryptError | None:
    """The error to raise when botocore refuses to create a client, or
    None for an error that is not botocore's (to re-raise as it is)."""
    if isinstance(error, InvalidRegionError):
        return ConfigurationError(
            f"{region_name!r} is not a valid AWS Region name.",
            option="region_name",
        )
    if isinstance(error, ValueError) and not hasattr(error, "kwargs"):
        return ConfigurationError(
            f"botocore refused the client options: {error}",
            option="endpoint_url",
        )
    if not type(error).__module__.startswith("botocore"):
        return None
    translated = translate_botocore_error(
        error, operation="CreateClient", endpoint_url=endpoint_url
    )
    if isinstance(translated, ConfigurationError):
        return translated
    # Nothing is sent while a client is created: whatever else botocore
    # refuses here is an option.
    return ConfigurationError(
        f"botocore refused the client options ({type(error).__name__}).",
        option="config",
    )
