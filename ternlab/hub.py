"""Hugging Face Hub ids wherever ternlab takes a model or tokenizer path.

:func:`resolve` returns a local path unchanged; anything else of the form
``owner/name`` (optionally ``owner/name@revision``) is fetched with
``huggingface_hub.snapshot_download`` into the standard Hub cache (``HF_HOME``), so
the second use needs no network. With no network, or with ``HF_HUB_OFFLINE=1`` and
the id not cached, the error names the id and says how to get it.
"""

from __future__ import annotations

import re
from pathlib import Path

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


class HubError(FileNotFoundError):
    """A path that is neither on disk nor downloadable; the message says what to do."""


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the shape of a Hub repository id (``owner/name[@rev]``)."""
    return HUB_ID.match(text) is not None and not text.startswith((".", "/", "~"))


def resolve(path: str | Path, what: str, allow_patterns: list[str] | None = None) -> Path:
    """The local path ``path`` names, downloading a Hub id first (cached).

    ``what`` names the setting in errors (e.g. ``"model.init_from"``);
    ``allow_patterns`` limits which repository files are downloaded.
    """
    text = str(path)
    local = Path(text).expanduser()
    if local.exists():
        return local
    if not is_hub_id(text):
        raise HubError(
            f"{what}: no file or folder at {text!r}, and it is not a Hub id (owner/name)"
        )
    m = HUB_ID.match(text)
    repo, rev = m.group("repo"), m.group("rev")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=rev, allow_patterns=allow_patterns))
    except LocalEntryNotFoundError as e:
        raise HubError(
            f"{what}: {text!r} is not a local path and is not in the Hugging Face cache, and "
            f"it cannot be downloaded now (offline or HF_HUB_OFFLINE=1: {type(e).__name__}). "
            f"Download it once with network (`hf download {repo}`), or give a local folder"
        ) from e
    except (HfHubHTTPError, OSError) as e:
        raise HubError(
            f"{what}: {text!r} is not a local path, and the Hugging Face Hub refused it "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check the id "
            "(owner/name), your access (`hf auth login` for gated models) and the network"
        ) from e
