import logging
import re
from pathlib import Path

import pytest
import structlog

from agent.config import SETTINGS, Config, QueueSettings
from agent.errors import ConfigError
from agent.redaction import redact

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_product_readme() -> None:
    config = Config(environ={}, env_file=None)
    config.validate()
    assert config.worker_pool_size == 5
    assert config.event_visibility_timeout == 300
    assert config.max_retry_count == 3
    assert config.retry_base_delay == 10
    assert config.database_url is None
    assert config.queue_settings() == QueueSettings()


def test_values_are_parsed_into_types() -> None:
    config = Config(
        environ={
            "WORKER_POOL_SIZE": "16",
            "EVENT_VISIBILITY_TIMEOUT": "2.5",
            "MAX_RETRY_COUNT": "0",
            "ALLOWED_CHANNELS": "C1, C2,,",
            "LOG_LEVEL": "debug",
        },
        env_file=None,
    )
    config.validate()
    assert config.worker_pool_size == 16
    assert config.event_visibility_timeout == 2.5
    assert config.max_retry_count == 0
    assert config.allowed_channels == ("C1", "C2")
    assert config.log_level == "DEBUG"


def test_embedding_max_tokens_defaults_to_128_and_is_bounded() -> None:
    assert Config(environ={}, env_file=None).embedding_max_tokens == 128
    assert Config(environ={"EMBEDDING_MAX_TOKENS": "256"}, env_file=None).embedding_max_tokens == 256
    config = Config(environ={"EMBEDDING_MAX_TOKENS": "1024"}, env_file=None)
    with pytest.raises(ConfigError, match=r"EMBEDDING_MAX_TOKENS.*between 8 and 512"):
        config.validate()


def test_database_ping_after_defaults_to_one_second_and_may_be_zero() -> None:
    assert Config(environ={}, env_file=None).database_ping_after == 1.0
    assert Config(environ={"DATABASE_PING_AFTER": "0"}, env_file=None).database_ping_after == 0.0
    config = Config(environ={"DATABASE_PING_AFTER": "-1"}, env_file=None)
    with pytest.raises(ConfigError, match=r"DATABASE_PING_AFTER.*0 or more"):
        config.validate()


def test_validate_lists_every_bad_value_with_its_fix() -> None:
    config = Config(
        environ={
            "WORKER_POOL_SIZE": "zero",
            "EVENT_VISIBILITY_TIMEOUT": "-1",
            "LOG_FORMAT": "xml",
            "SLACK_BOT_TOKEN": "xapp-wrong-kind-of-token",
            "DATABASE_URL": "mysql://u:p@h/db",
        },
        env_file=None,
    )
    with pytest.raises(ConfigError) as info:
        config.validate()
    message = str(info.value)
    for name in ("WORKER_POOL_SIZE", "EVENT_VISIBILITY_TIMEOUT", "LOG_FORMAT", "SLACK_BOT_TOKEN", "DATABASE_URL"):
        assert name in message
    assert "json, console" in message  # says what would be valid
    assert "xapp-wrong-kind-of-token" not in message  # a secret's bad value is not echoed


def test_heartbeat_must_be_shorter_than_the_lease() -> None:
    config = Config(environ={"EVENT_VISIBILITY_TIMEOUT": "10", "HEARTBEAT_INTERVAL": "10"}, env_file=None)
    with pytest.raises(ConfigError, match="HEARTBEAT_INTERVAL"):
        config.validate()


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("WORKER_POOL_SIZE=7\nMAX_RETRY_COUNT=9\n")
    config = Config(environ={"MAX_RETRY_COUNT": "1"}, env_file=env_file)
    assert config.worker_pool_size == 7
    assert config.max_retry_count == 1


def test_secrets_are_masked_in_printed_and_logged_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.logging import configure_logging

    config = Config(
        environ={
            "SLACK_BOT_TOKEN": "xoxb-canary-1111111111",
            "ANTHROPIC_API_KEY": "sk-ant-canary-222222222",
            "DATABASE_URL": "postgresql://athena:canarypassword@db.example:5432/athenaeum",
        },
        env_file=None,
    )
    shown = config.as_dict()
    assert shown["SLACK_BOT_TOKEN"] == "***"
    assert shown["ANTHROPIC_API_KEY"] == "***"
    assert shown["DATABASE_URL"] == "postgresql://athena:***@db.example:5432/athenaeum"
    configure_logging("INFO", "json")
    try:
        config.log_configuration()
        repr_text = repr(config)
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "configuration" in err
    for canary in ("xoxb-canary-1111111111", "sk-ant-canary-222222222", "canarypassword"):
        assert canary not in err
        assert canary not in repr_text
        assert canary not in redact(f"error talking to backend with {canary}")


def test_env_sample_documents_every_setting() -> None:
    documented = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (ROOT / ".env.sample").read_text(), flags=re.M))
    assert documented == {s.env for s in SETTINGS}


def test_no_module_but_config_reads_the_environment() -> None:
    offenders = []
    for path in ROOT.glob("**/*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".venv", "tests/", "scripts/", "alembic/versions/")) or rel == "agent/config.py":
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(rel)
    assert offenders == []
