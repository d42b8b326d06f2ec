"""``twistd smsgw --config FILE``: Options and makeService (twisted/web/tap.py)."""

from __future__ import annotations

from twisted.application.service import IService
from twisted.internet import reactor
from twisted.python import usage
from typing_extensions import override

from smsgw.runtime import tune_gc
from smsgw.service import logs
from smsgw.service.config import Config, ConfigError, load_config
from smsgw.service.gateway import Gateway


class Options(usage.Options):
    """twistd smsgw options."""

    synopsis = "[--config FILE]"
    optParameters = [
        ["config", "c", "conf/smsgw.yaml", "The gateway's YAML configuration file."],
    ]

    @override
    def postOptions(self) -> None:
        """Load and validate the config, so twistd exits before daemonising."""
        try:
            self.loaded: Config = load_config(self["config"])
        except FileNotFoundError:
            raise usage.UsageError(f"config file not found: {self['config']}") from None
        except ConfigError as e:
            raise usage.UsageError(f"invalid config {self['config']}:\n{e}") from None
        logs.configure(self.loaded.logging.level, self.loaded.logging.format)
        problem = preflight(self.loaded)
        if problem is not None:
            raise usage.UsageError(problem)
        # Plain `twistd -n smsgw` logs to stdout at every level (debug lines
        # per message): follow the config's level and format instead, unless
        # the operator chose a --logger or a --logfile.
        parent = getattr(self, "parent", None)
        if (
            parent is not None
            and parent.get("logger") is None
            and parent.get("nodaemon")
            and parent.get("logfile") in (None, "-")
        ):
            parent["logger"] = "smsgw.service.logs.configured"


def preflight(cfg: Config) -> str | None:
    """What stops this gateway from starting (schema, keys, database), or None.

    Checked before twistd daemonises, so the operator reads one line, not a
    traceback.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from smsgw.service.config import mask_url
    from smsgw.store.chain import load_audit_signer
    from smsgw.store.db import SchemaError, check_schema, make_engine
    from smsgw.store.keyring import open_keyring
    from smsgw.store.keys import KeyFileError

    try:
        engine = make_engine(cfg.database.url, hide_parameters=True)
        try:
            check_schema(engine)
            open_keyring(engine, cfg.keys_dir)  # the keys match the database
        finally:
            engine.dispose()
        load_audit_signer(cfg.keys_dir)
        if cfg.intake.client_ca is not None:
            from twisted.internet import reactor as _reactor

            from smsgw.intake.tls import intake_endpoint

            intake_endpoint(_reactor, cfg.intake.listen, cfg.intake.client_ca)
    except (SchemaError, KeyFileError) as e:
        return str(e)
    except ValueError as e:  # TlsConfigError: a key, certificate or CA file
        return f"intake TLS: {e}"
    except SQLAlchemyError as e:
        first = str(getattr(e, "orig", None) or e).splitlines()[0]
        return f"database {mask_url(cfg.database.url)}: {first}"
    except OSError as e:
        return f"{e.filename or cfg.keys_dir}: {e.strerror}"
    return None


def makeService(options: Options) -> IService:
    """Build the gateway from the loaded config."""
    gateway = Gateway(options.loaded, reactor)
    tune_gc()
    return gateway
