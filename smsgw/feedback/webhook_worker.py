"""The webhook worker: claims due webhooks from a store and POSTs them, signed.

Runs on the reactor thread with an injected clock. Every ``poll_interval``
seconds, and at once on ``poke()``, it asks the store for the webhooks due now,
never holding more than ``concurrency`` at a time. Each is POSTed to its URL
with fresh signature headers and the response body is read and dropped. Every
attempt is recorded:

- a 2xx answer: ``delivered``;
- another status, a connection error, or no answer within the target's
  ``timeout`` (the request is cancelled): ``retry`` after an exponential
  back-off, or ``failed`` once ``max_attempts`` attempts were made;
- an issuer with no configured target: ``failed`` at once.

Store errors are logged and the loop goes on at the next poll. A webhook the
store handed out is its claim: one not recorded (store error, or claimed as
the worker stopped) stays claimed until the store releases it. Logs carry the
webhook id, issuer, attempt and status; never the body, the URL's query string
or the secret.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IConsumer, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from typing_extensions import override
from zope.interface import implementer

from smsgw.feedback.webhook import (
    PendingWebhook,
    WebhookAttempt,
    WebhookTarget,
    next_step,
    redact_url,
    scrub_error,
    signature_headers,
)

__all__ = [
    "PendingWebhook",
    "WebhookAttempt",
    "WebhookStore",
    "WebhookTarget",
    "WebhookWorker",
]


class WebhookStore(Protocol):
    """Where pending webhooks live (the database in production)."""

    def due(
        self, now: float, limit: int, held: frozenset[int]
    ) -> defer.Deferred[list[PendingWebhook]]:
        """Claim and return up to ``limit`` webhooks due at ``now``, never one
        of ``held`` (this worker's, claimed and not finished: posting one of
        them again would send the event twice)."""
        ...

    def record(self, attempt: WebhookAttempt) -> defer.Deferred[None]:
        """Store an attempt and the webhook's new state."""
        ...


@implementer(IBodyProducer)
class _BytesProducer:
    """Writes one in-memory body (FileBodyProducer would need a cooperator).

    Method names are IBodyProducer's, hence the noqa.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> defer.Deferred[None]:  # noqa: N802
        consumer.write(self._body)
        return defer.succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802
        pass

    def resumeProducing(self) -> None:  # noqa: N802
        pass

    def stopProducing(self) -> None:  # noqa: N802
        pass


class _Discard(protocol.Protocol):
    """Drops a response body; ``finished`` fires once, when the body ends.

    Used instead of ``readBody``: the agent's response transport has no
    ``abortConnection``, so cancelling ``readBody`` leaves the connection open
    and its Deferred is fired a second time later (twisted/twisted#12499).
    """

    def __init__(self) -> None:
        self.finished: defer.Deferred[None] = defer.Deferred(self._cancel)

    @override
    def dataReceived(self, data: bytes) -> None:
        pass

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Done, cut short or dropped: the status line came, the body does not
        # matter. After a cancel ``finished`` has fired already.
        if not self.finished.called:
            self.finished.callback(None)

    def _cancel(self, finished: defer.Deferred[None]) -> None:
        if self.transport is not None:
            abort = getattr(self.transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:
                self.transport.loseConnection()


def _describe(failure: Failure) -> str:
    """A short reason for a failed request, e.g. ``ConnectionRefusedError: …``."""
    if isinstance(failure.value, ResponseFailed | ResponseNeverReceived):
        reasons = failure.value.reasons
        if reasons and isinstance(reasons[0], Failure):
            failure = reasons[0]
    text = str(failure.value).strip()
    name = type(failure.value).__name__
    return f"{name}: {text}" if text else name


class WebhookWorker:
    """Posts due webhooks and records every attempt (see the module docstring)."""

    log = Logger()

    def __init__(
        self,
        store: WebhookStore,
        agent: IAgent,
        clock: IReactorTime,
        targets: Mapping[str, WebhookTarget],
        *,
        poll_interval: float = 5.0,
        initial: float = 10.0,
        maximum: float = 3600.0,
        max_attempts: int = 12,
        concurrency: int = 4,
    ) -> None:
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be 1 or more")
        self.store = store
        self.agent = agent
        self.clock = clock
        self.targets = targets
        self.poll_interval = poll_interval
        self.initial = initial
        self.maximum = maximum
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self._running = False
        self._poll: LoopingCall | None = None
        self._fetching = False  # a store.due() call is outstanding
        self._looping = False  # inside _check's loop (no recursion)
        self._again = False  # check once more when the current check ends
        self._more = False  # the store may hold more due work than we took
        self._waiting: deque[PendingWebhook] = deque()  # claimed, not started
        self._held: set[int] = set()  # ids claimed and not finished
        self._posts: set[int] = set()  # tokens of webhooks being posted/recorded
        self._tokens = itertools.count()
        self._idle: list[defer.Deferred[None]] = []

    @property
    def in_flight(self) -> int:
        """Webhooks being posted or recorded now."""
        return len(self._posts)

    def start(self) -> None:
        """Check for due webhooks now, then every ``poll_interval`` seconds."""
        if not self._running:
            self._running = True
            self._poll = LoopingCall(self._check)
            self._poll.clock = self.clock
            # now=True: the first check runs at once. LoopingCall keeps to the
            # interval grid, so a late tick does not push the later ones back.
            self._poll.start(self.poll_interval, now=True)

    def stop(self) -> defer.Deferred[None]:
        """Stop polling; fires once the posts in flight are done and recorded."""
        self._running = False
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        self._poll = None
        self._left_unsent(len(self._waiting))
        self._held.difference_update(w.id for w in self._waiting)
        self._waiting.clear()
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        self._maybe_idle()
        return d

    def poke(self) -> None:
        """Check for due webhooks now (a webhook was just queued)."""
        self._check()

    # -- polling -------------------------------------------------------------

    def _check(self) -> None:
        if not self._running:
            return
        if self._looping or self._fetching:
            self._again = True
            return
        # A loop, not recursion: a store and agent that answer synchronously
        # would otherwise nest one stack frame set per batch.
        self._looping = self._again = True
        try:
            while self._again and self._running and not self._fetching:
                self._again = False
                free = self.concurrency - len(self._posts) - len(self._waiting)
                if free <= 0:
                    self._more = True
                    break
                self._fetching = True
                d = defer.maybeDeferred(
                    self.store.due, self.clock.seconds(), free, frozenset(self._held)
                )
                d.addCallbacks(self._fetched, self._fetch_failed, callbackArgs=(free,))
                d.addBoth(self._fetch_done)
        finally:
            self._looping = False

    def _fetched(self, webhooks: list[PendingWebhook], limit: int) -> None:
        self._more = len(webhooks) >= limit
        if not self._running:
            self._left_unsent(len(webhooks))
            return
        self._waiting.extend(webhooks)
        self._held.update(w.id for w in webhooks)
        self._fill()

    def _fill(self) -> None:
        while self._waiting and len(self._posts) < self.concurrency:
            self._start(self._waiting.popleft())

    def _fetch_failed(self, failure: Failure) -> None:
        self.log.failure(
            "webhook store due() failed; trying again at the next poll",
            failure,
            store_op="due",
        )

    def _fetch_done(self, result: Failure | None) -> None:
        if isinstance(result, Failure):  # a bug here, not a store error
            self.log.failure("webhook worker error", result)
        self._fetching = False
        if self._again and not self._looping:
            self._check()
        self._maybe_idle()

    def _left_unsent(self, count: int) -> None:
        if count:
            self.log.info(
                "webhook worker stopped; {count} claimed webhooks left unsent",
                count=count,
            )

    def _maybe_idle(self) -> None:
        if self._running or self._fetching or self._posts:
            return
        idle, self._idle = self._idle, []
        for d in idle:
            d.callback(None)

    # -- one webhook ---------------------------------------------------------

    def _start(self, webhook: PendingWebhook) -> None:
        token = next(self._tokens)
        self._posts.add(token)
        d = self._attempt(webhook)
        d.addCallback(self._record, webhook)
        d.addBoth(self._finished, token, webhook.id)

    def _attempt(self, webhook: PendingWebhook) -> defer.Deferred[WebhookAttempt]:
        """POST the webhook once; fires with the attempt (never fails)."""
        number = webhook.attempts + 1
        started = self.clock.seconds()
        target = self.targets.get(webhook.issuer)
        if target is None:
            error = f"no webhook configured for issuer {webhook.issuer}"
            return defer.succeed(
                WebhookAttempt(webhook.id, number, started, None, error, "failed", None)
            )
        d = defer.maybeDeferred(self._request, webhook, target, int(started))
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            d.cancel()

        timer = self.clock.callLater(target.timeout, on_timeout)

        def done(result: int | Failure) -> WebhookAttempt:
            if timer.active():
                timer.cancel()
            status: int | None = None
            error: str | None = None
            if timed_out:
                error = f"timeout after {target.timeout:g} s"
            elif isinstance(result, Failure):
                error = scrub_error(_describe(result), webhook.url)
            else:
                status = result
            step, next_at = next_step(
                number,
                status,
                self.clock.seconds(),
                initial=self.initial,
                maximum=self.maximum,
                max_attempts=self.max_attempts,
            )
            return WebhookAttempt(
                webhook.id, number, started, status, error, step, next_at
            )

        return d.addBoth(done)

    def _request(
        self, webhook: PendingWebhook, target: WebhookTarget, timestamp: int
    ) -> defer.Deferred[int]:
        """POST ``webhook``; fires with the status once the body was dropped."""
        headers = signature_headers(
            target.secret, target.key_id, timestamp, webhook.body
        )
        d = self.agent.request(
            b"POST",
            webhook.url.encode("ascii"),
            Headers(headers),
            _BytesProducer(webhook.body),
        )

        def drain(response: IResponse) -> defer.Deferred[int]:
            code: int = response.code
            body = _Discard()
            response.deliverBody(body)
            return body.finished.addCallback(lambda _: code)

        return d.addCallback(drain)

    def _record(
        self, attempt: WebhookAttempt, webhook: PendingWebhook
    ) -> defer.Deferred[None]:
        fields: dict[str, Any] = {
            "webhook_id": webhook.id,
            "issuer": webhook.issuer,
            "attempt": attempt.attempt,
            "status": attempt.status_code,
        }
        emit = self.log.info if attempt.outcome == "delivered" else self.log.warn
        emit(
            "webhook {outcome} webhook_id={webhook_id} issuer={issuer}"
            " attempt={attempt} status={status} error={error}",
            outcome=attempt.outcome,
            error=attempt.error,
            next_at=attempt.next_at,
            endpoint=redact_url(webhook.url),
            **fields,
        )

        def failed(failure: Failure) -> None:
            self.log.failure(
                "webhook store record() failed webhook_id={webhook_id}"
                " attempt={attempt}",
                failure,
                store_op="record",
                **fields,
            )

        return defer.maybeDeferred(self.store.record, attempt).addErrback(failed)

    def _finished(self, result: Failure | None, token: int, webhook_id: int) -> None:
        self._posts.discard(token)
        self._held.discard(webhook_id)
        if isinstance(result, Failure):  # a bug here, not a post or store error
            self.log.failure("webhook worker error", result)
        if self._running:
            self._fill()
            if self._more:
                self._check()
        self._maybe_idle()
