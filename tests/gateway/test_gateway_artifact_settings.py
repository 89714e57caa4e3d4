"""`gateway up`'s artifact link settings: a signing key generated for the run when none is
set, the user's own kept, and links based on the proxy's own URL by default."""

from __future__ import annotations

from gateway.settings import ARTIFACT_KEY_ENV, PUBLIC_URL_ENV, Flags, build_stack_settings


def test_up_generates_a_signing_key_for_the_run_when_none_is_set() -> None:
    """Without the variable, `up`'s settings carry a fresh key, masked by the redactor."""
    settings = build_stack_settings(None, {}, Flags(), generate_master_key=True)
    key = settings.environ[ARTIFACT_KEY_ENV]
    assert settings.signing_key_generated
    assert len(key) >= 32
    assert key not in settings.redactor.scrub(f"key {key}")


def test_a_configured_signing_key_is_kept() -> None:
    """A key in the environment is used as it is, and nothing is said to be generated."""
    env = {ARTIFACT_KEY_ENV: "the-operators-own-signing-key"}
    settings = build_stack_settings(None, env, Flags(), generate_master_key=True)
    assert settings.environ[ARTIFACT_KEY_ENV] == "the-operators-own-signing-key"
    assert not settings.signing_key_generated


def test_commands_other_than_up_generate_no_key() -> None:
    """Only `up` starts the processes that would share a generated key."""
    settings = build_stack_settings(None, {}, Flags())
    assert ARTIFACT_KEY_ENV not in settings.environ
    assert not settings.signing_key_generated


def test_links_start_with_the_proxys_url_unless_set() -> None:
    """The public URL defaults to where `up` serves the proxy; a set one wins."""
    flags = Flags(host="127.0.0.1", port=4100)
    default = build_stack_settings(None, {}, flags, generate_master_key=True)
    assert default.environ[PUBLIC_URL_ENV] == "http://127.0.0.1:4100"
    env = {PUBLIC_URL_ENV: "https://gateway.example.com"}
    chosen = build_stack_settings(None, env, flags, generate_master_key=True)
    assert chosen.environ[PUBLIC_URL_ENV] == "https://gateway.example.com"
