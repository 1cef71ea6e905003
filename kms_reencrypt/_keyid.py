"""Parsing KMS key identifiers into typed, frozen values.

KMS accepts five forms wherever it takes a key (../shared/spec.md, 3.2):
a key ID, a multi-Region key ID, a key ARN, an alias name and an alias
ARN. ``parse_key_id`` recognises them, and for anything else explains
what is wrong and, where it can guess, which text was meant. A parsed
identifier is never rewritten: ``str()`` gives back the text exactly as
it was given, and that text is what goes to KMS.

Partitions and their Regions come from botocore's own data files, loaded
once per process.
"""

from __future__ import annotations

import enum
import functools
import re
from typing import Any

import attrs
from botocore.loaders import create_loader

from ._exceptions import InvalidKeyIdentifierError

__all__ = [
    "KeyIdForm",
    "KeyIdentifier",
    "known_partitions",
    "parse_key_id",
    "partition_of_region",
]

MAX_ALIAS_NAME_CHARS = 256
AWS_MANAGED_ALIAS_PREFIX = "alias/aws/"

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_MRK = r"mrk-[0-9a-f]{32}"
_ALIAS = r"alias/[a-zA-Z0-9:/_-]+"
_KEY_ID = re.compile(_UUID)
_MRK_ID = re.compile(_MRK)
_ALIAS_NAME = re.compile(_ALIAS)
# ARN fields: partition, service, Region, account, resource. Only the
# shape is matched here; each field is judged on its own afterwards, so
# that a near miss gets a precise message.
_ARN = re.compile(
    r"arn:(?P<partition>[^:]*):(?P<service>[^:]*):(?P<region>[^:]*)"
    r":(?P<account>[^:]*):(?P<resource>.*)",
    re.DOTALL,
)
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ACCOUNT = re.compile(r"[0-9]{12}")  # ASCII digits only, not any \d
_HEX_ONLY = re.compile(r"[0-9a-fA-F]{32}")
_LOOSE_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
    r"[0-9a-fA-F]{12}"
)
_LOOSE_MRK = re.compile(r"(?i:mrk)-?[0-9a-fA-F]{32}")
_ALIAS_CHARS = re.compile(r"[a-zA-Z0-9:/_-]+")

_FORMS_HINT = (
    "use a key ID (1234abcd-12ab-34cd-56ef-1234567890ab), a multi-Region "
    "key ID (mrk- and 32 hex digits), a key ARN "
    "(arn:aws:kms:<region>:<account>:key/<key-id>), an alias name "
    "(alias/<name>) or an alias ARN "
    "(arn:aws:kms:<region>:<account>:alias/<name>)"
)


class KeyIdForm(enum.Enum):
    """The five ways of naming a KMS key."""

    KEY_ID = "key ID"
    MULTI_REGION_KEY_ID = "multi-Region key ID"
    KEY_ARN = "key ARN"
    ALIAS_NAME = "alias name"
    ALIAS_ARN = "alias ARN"


@attrs.frozen(kw_only=True)
class KeyIdentifier:
    """A key identifier, parsed; ``str()`` gives back the exact text.

    Build one with ``parse_key_id``; built directly, it checks only the
    types of its parts (``InvalidKeyIdentifierError`` otherwise).

    Attributes:
        text: The identifier exactly as given; this is what is sent.
        form: Which of the five forms it is.
        key_id: The key ID or multi-Region key ID, for those forms and
            for a key ARN; None for aliases.
        alias_name: The alias name (``alias/...``), for an alias name or
            alias ARN; None otherwise.
        partition: The ARN's partition (``aws``, ``aws-cn``, ...); None
            for the forms that are not ARNs.
        region: The ARN's Region; None for the forms that are not ARNs
            (they mean the client's own Region).
        account: The ARN's account; None for the forms that are not ARNs
            (they mean the caller's own account).
    """

    text: str
    form: KeyIdForm
    key_id: str | None = None
    alias_name: str | None = None
    partition: str | None = None
    region: str | None = None
    account: str | None = None

    def __attrs_post_init__(self) -> None:
        # parse_key_id is the way to build one; a direct call is held to
        # the same types, so that no instance breaks str() or a property.
        optional = (
            self.key_id,
            self.alias_name,
            self.partition,
            self.region,
            self.account,
        )
        if (
            not isinstance(self.text, str)
            or not isinstance(self.form, KeyIdForm)
            or not all(v is None or isinstance(v, str) for v in optional)
        ):
            raise InvalidKeyIdentifierError(
                "KeyIdentifier takes a str text, a KeyIdForm form and str "
                "or None parts; build one with parse_key_id().",
                parameter="KeyId",
            )

    def __str__(self) -> str:
        return self.text

    @property
    def is_arn(self) -> bool:
        """True for a key ARN or alias ARN."""
        return self.partition is not None

    @property
    def is_alias(self) -> bool:
        """True for an alias name or alias ARN."""
        return self.alias_name is not None

    @property
    def is_multi_region(self) -> bool:
        """True when the key ID shows a multi-Region key (``mrk-``)."""
        return self.key_id is not None and self.key_id.startswith("mrk-")

    @property
    def is_aws_managed(self) -> bool:
        """True for an alias under ``alias/aws/``, which names an AWS
        managed key."""
        return self.alias_name is not None and self.alias_name.startswith(
            AWS_MANAGED_ALIAS_PREFIX
        )


@attrs.frozen
class _Partition:
    name: str
    regions: frozenset[str]
    region_regex: re.Pattern[str] | None


@functools.cache
def _partitions() -> tuple[_Partition, ...]:
    loader = create_loader()
    try:
        data: Any = loader.load_data("partitions")
        entries = [
            (p["id"], p.get("regions") or {}, p.get("regionRegex"))
            for p in data["partitions"]
        ]
    except Exception:
        # Older botocore releases ship only endpoints.json.
        data = loader.load_data("endpoints")
        entries = [
            (p["partition"], p.get("regions") or {}, p.get("regionRegex"))
            for p in data["partitions"]
        ]

    return tuple(
        _Partition(
            str(name),
            frozenset(regions),
            re.compile(regex) if regex else None,
        )
        for name, regions, regex in entries
    )


def known_partitions() -> frozenset[str]:
    """Return the partition names botocore knows (``aws``, ``aws-cn``, ...).

    Returns:
        The names, read once from botocore's data files.
    """
    return frozenset(p.name for p in _partitions())


@functools.lru_cache(maxsize=256)
def partition_of_region(region: str) -> str | None:
    """Return the partition a Region belongs to, per botocore's data.

    Args:
        region: A Region name such as ``eu-west-1``.

    Returns:
        The partition name, or None when no partition claims the Region
        (a local emulator's made-up Region, for example).
    """
    for partition in _partitions():
        if region in partition.regions:
            return partition.name
    for partition in _partitions():
        regex = partition.region_regex
        if regex is not None and regex.fullmatch(region):
            return partition.name

    return None


@attrs.frozen
class _Problem:
    reason: str
    suggestion: str | None = None


def parse_key_id(text: str, *, parameter: str = "KeyId") -> KeyIdentifier:
    """Parse a KMS key identifier in any of its five forms.

    Args:
        text: The identifier.
        parameter: The API member name to report on failure.

    Returns:
        The parsed identifier; its ``text`` is ``text`` unchanged.

    Raises:
        InvalidKeyIdentifierError: ``text`` is none of the five forms. The
            message says why and, when a likely intended form exists,
            suggests it (it is never used in place of what was given).
    """
    if not isinstance(text, str):
        raise InvalidKeyIdentifierError(
            f"{parameter} must be a str, got {type(text).__name__}.",
            parameter=parameter,
        )
    parsed = _parse(text)
    if isinstance(parsed, KeyIdentifier):
        return parsed
    raise InvalidKeyIdentifierError(
        _problem_message(parameter, text, parsed), parameter=parameter
    )


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _problem_message(parameter: str, text: str, problem: _Problem) -> str:
    message = (
        f"{parameter} {_shown(text)} is not a KMS key identifier: "
        f"{problem.reason}"
    )
    if problem.suggestion is not None:
        message += f" Did you mean {problem.suggestion!r}?"
    else:
        message += f" {_FORMS_HINT[0].upper()}{_FORMS_HINT[1:]}."

    return message


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> KeyIdentifier | _Problem:
    # Fast paths first, in the order callers use the forms most.
    if text.startswith("arn:"):
        return _parse_arn(text)
    if text.startswith("alias/"):
        return _parse_alias(text)
    if _KEY_ID.fullmatch(text):
        return KeyIdentifier(text=text, form=KeyIdForm.KEY_ID, key_id=text)
    if _MRK_ID.fullmatch(text):
        return KeyIdentifier(
            text=text, form=KeyIdForm.MULTI_REGION_KEY_ID, key_id=text
        )

    return _diagnose(text)


def _check_alias_name(name: str) -> _Problem | None:
    if len(name) > MAX_ALIAS_NAME_CHARS:
        return _Problem(
            f"an alias name has at most {MAX_ALIAS_NAME_CHARS} characters, "
            f"this one has {len(name)}."
        )
    if name == "alias/":
        return _Problem("the alias name after 'alias/' is empty.")
    if not _ALIAS_NAME.fullmatch(name):
        bad = sorted({c for c in name if not _ALIAS_CHARS.fullmatch(c)})
        shown = ", ".join(repr(c) for c in bad[:5])
        return _Problem(
            f"an alias name may contain only letters, digits and "
            f"':/_-' after 'alias/'; found {shown}.",
            _cleaned(name),
        )
    return None


def _cleaned(text: str) -> str | None:
    stripped = text.strip()
    if stripped != text and isinstance(_parse(stripped), KeyIdentifier):
        return stripped
    return None


def _parse_alias(text: str) -> KeyIdentifier | _Problem:
    if text.startswith("alias/arn:"):
        rest = text[len("alias/") :]
        return _Problem(
            "an alias ARN does not take the 'alias/' prefix in front.",
            rest if isinstance(_parse(rest), KeyIdentifier) else None,
        )
    problem = _check_alias_name(text)
    if problem is not None:
        return problem

    return KeyIdentifier(text=text, form=KeyIdForm.ALIAS_NAME, alias_name=text)


def _parse_arn(text: str) -> KeyIdentifier | _Problem:
    match = _ARN.fullmatch(text)
    if match is None:
        return _Problem(
            "an ARN has six ':'-separated fields: "
            "arn:<partition>:kms:<region>:<account>:<resource>.",
            _cleaned(text),
        )
    partition, service, region, account, resource = match.group(
        "partition", "service", "region", "account", "resource"
    )
    known = known_partitions()
    if partition not in known:
        return _Problem(
            f"partition {partition[:32]!r} is not one botocore knows "
            f"({', '.join(sorted(known))}); upgrade botocore if it is new.",
            _cleaned(text),
        )
    if service != "kms":
        return _Problem(
            f"the ARN is for service {service[:32]!r}, not 'kms'.",
            _cleaned(text),
        )
    if not _REGION.fullmatch(region):
        return _Problem(
            f"{region[:32]!r} is not a Region name (such as us-east-1).",
            _cleaned(text),
        )
    region_partition = partition_of_region(region)
    if region_partition is not None and region_partition != partition:
        fixed = f"arn:{region_partition}:{text[5 + len(partition) :]}"
        return _Problem(
            f"Region {region} is in partition {region_partition}, not "
            f"{partition}.",
            fixed,
        )
    if not _ACCOUNT.fullmatch(account):
        return _Problem(
            f"the account field must be 12 digits, got {account[:32]!r}.",
            _cleaned(text),
        )
    fields: dict[str, Any] = {
        "text": text,
        "partition": partition,
        "region": region,
        "account": account,
    }
    prefix = text[: len(text) - len(resource)]
    if resource.startswith("key/"):
        key_id = resource[4:]
        if key_id.startswith("alias/"):
            return _Problem(
                "an alias ARN has 'alias/<name>' as its resource, not "
                "'key/alias/<name>'.",
                prefix + key_id,
            )
        if _KEY_ID.fullmatch(key_id) or _MRK_ID.fullmatch(key_id):
            return KeyIdentifier(
                form=KeyIdForm.KEY_ARN, key_id=key_id, **fields
            )
        fixed_id = _normal_key_id(key_id)
        return _Problem(
            f"the key ARN's key ID {key_id[:64]!r} is neither a key ID "
            "(lowercase hex with dashes, 8-4-4-4-12) nor a multi-Region "
            "key ID (mrk- and 32 lowercase hex digits).",
            None if fixed_id is None else prefix + "key/" + fixed_id,
        )
    if resource.startswith("alias/"):
        problem = _check_alias_name(resource)
        if problem is not None:
            return _Problem(
                problem.reason,
                None if problem.suggestion is None else _cleaned(text),
            )
        return KeyIdentifier(
            form=KeyIdForm.ALIAS_ARN, alias_name=resource, **fields
        )

    return _Problem(
        "a KMS ARN's resource must be 'key/<key-id>' or 'alias/<name>', "
        f"got {resource[:64]!r}.",
        _cleaned(text),
    )


def _normal_key_id(text: str) -> str | None:
    # A key ID typed in upper case or with its dashes dropped: return the
    # form KMS issues, for the message only.
    if _LOOSE_MRK.fullmatch(text):
        digits = text[-32:].lower()
        return f"mrk-{digits}"
    if _LOOSE_UUID.fullmatch(text):
        digits = text.replace("-", "").lower()
        return (
            f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-"
            f"{digits[16:20]}-{digits[20:]}"
        )
    return None


def _diagnose(text: str) -> _Problem:
    cleaned = _cleaned(text)
    if cleaned is not None:
        return _Problem(
            "it has whitespace around it, which KMS does not strip.",
            cleaned,
        )
    fixed_id = _normal_key_id(text)
    if fixed_id is not None:
        return _Problem(
            "key IDs are lowercase hex with dashes (8-4-4-4-12), and "
            "multi-Region key IDs are 'mrk-' and 32 lowercase hex digits.",
            fixed_id,
        )
    if text[:4].lower() == "mrk-":
        return _Problem(
            "a multi-Region key ID is 'mrk-' and 32 lowercase hex digits, "
            "without dashes."
        )
    if text.startswith("aws/") or (
        _ALIAS_CHARS.fullmatch(text) and not text.startswith("key/")
    ):
        candidate = "alias/" + text
        if isinstance(_parse(candidate), KeyIdentifier):
            return _Problem(
                "an alias name starts with 'alias/'.",
                candidate,
            )
    if text.startswith("key/"):
        rest = text[4:]
        if isinstance(_parse(rest), KeyIdentifier):
            return _Problem(
                "'key/' belongs only inside a key ARN; a bare key ID has "
                "no prefix.",
                rest,
            )

    return _Problem("it matches none of the five forms KMS accepts.")
