"""One channel at run time: its queue, targets, dispatcher task and worker tasks."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neuralcore.messaging._config import ChannelConfig
from neuralcore.messaging._limits import IdempotencyWindow, TokenBucket
from neuralcore.messaging._message import Message
from neuralcore.messaging._metrics import ChannelStats
from neuralcore.messaging._native import DirectPublish, direct_publish
from neuralcore.messaging._publish import HANDLING
from neuralcore.messaging._queue import PriorityQueue
from neuralcore.messaging._subscription import Subscription, Target

if TYPE_CHECKING:
    from neuralcore.messaging._bridge import Tap
    from neuralcore.messaging._host import ChannelHost
    from neuralcore.messaging._types import Outcome

__all__ = ("Channel",)

logger = logging.getLogger(__name__)
_perf = time.perf_counter


class Channel:
    """Runtime state of one channel (internal; the public face is :class:`MessageBus`).

    It sees its bus only through :class:`~neuralcore.messaging._host.ChannelHost`.
    """

    def __init__(self, host: ChannelHost, config: ChannelConfig) -> None:
        self.host = host
        self.config = config
        self.name = config.name
        self.max_size = config.max_size
        self.default_priority = config.default_priority
        self.in_memory = not config.persistent
        self.queue = PriorityQueue()
        self.stats = ChannelStats()
        self.targets: list[Target] = []  # replaced, never mutated: safe to iterate
        self.taps: list[Tap] = []
        # ``taps`` split by refresh(): outbound bridges' taps (their callback returns True
        # when it took a message for sending) and the rest (user taps), in tap order.
        self.forwarders: list[Tap] = []
        self.others: list[Tap] = []
        # The callback of the channel's only tap when that is an outbound bridge's tap
        # and the channel has no local subscriber (kept by _resink()): the publish fast
        # path hands its messages to it directly (Pipeline.give_taps, inlined).
        self.sink: Callable[[Message], object] | None = None
        # That tap's one-call publish when it is compiled (_native.direct_publish): the
        # fast path makes and hands over a message in one call.
        self.direct: DirectPublish | None = None
        self.limiter = (
            TokenBucket(
                rate=config.rate_limit, burst=config.rate_burst or max(1, int(config.rate_limit))
            )
            if config.rate_limit
            else None
        )
        self.idem = (
            IdempotencyWindow(config.idempotency_window) if config.idempotency_window else None
        )
        self.fast = True
        self.waiter: asyncio.Future[None] | None = None
        self.space: deque[asyncio.Future[None]] = deque()
        self.task: asyncio.Task[None] | None = None
        self.timers: set[asyncio.TimerHandle] = set()
        self.busy = 0  # deliveries being handled by workers
        # Keys that may publish / read here (None: anyone), set by the Gate's bind();
        # nobody until then.
        self.publishers: frozenset[str] | None = frozenset()
        self.readers: frozenset[str] | None = frozenset()
        self.pub_tick = 0
        self.fanout: list[tuple[Target, Any]] | None = None  # when every target is plain
        self.fan_of: list[Target] | None = None  # the targets list ``fanout`` was built from
        self.batch: list[Message] = []  # taken from the queue, not yet handed out
        self.cur = 0  # index in ``batch`` being handed out
        self._tick = 0
        self.refresh()

    def refresh(self) -> None:
        """Recompute whether publishes may take the fast path (no per-message features).

        Taps do not leave it: the fast path gives each message to the channel's taps
        itself (an in-memory channel records nothing for a durable tap, and persistent
        channels, whose durable taps need the journal's outbox rows, never take it).
        """
        self.forwarders = [t for t in self.taps if t.forwards]
        self.others = [t for t in self.taps if not t.forwards]
        self._resink()
        cfg = self.config
        self.fast = not (
            self.host.closed
            or cfg.persistent
            or self.limiter
            or self.idem
            or self.publishers is not None
            or self.host.middleware.publish
        )

    # -- waking ---------------------------------------------------------------------------

    def set_targets(self, targets: list[Target]) -> None:
        """Replace the targets list (never mutated in place) and its fan-out fast path."""
        self.targets = targets
        self.refresh_fanout()

    def refresh_fanout(self) -> None:
        """Rebuild the all-plain fan-out list after targets or memberships changed."""
        targets = self.targets
        plain = all(t.plain is not None for t in targets)
        self.fanout = [(t, t.plain) for t in targets] if plain and len(targets) > 1 else None
        self.fan_of = targets
        self._resink()

    def _resink(self) -> None:
        """``sink``: after the taps or the targets changed."""
        only = len(self.taps) == 1 and self.forwarders and not self.targets
        self.sink = self.forwarders[0].callback if only else None
        self.direct = direct_publish(self.sink)

    def wake(self) -> None:
        """Wake the dispatcher if it sleeps."""
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def wake_space(self, n: int) -> None:
        """Let up to ``n`` blocked publishers retry."""
        space = self.space
        while space and n > 0:
            fut = space.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1

    def idle(self) -> bool:
        """Nothing queued, handed out, being handled or waiting to be retried."""
        if self.queue.size and self.targets:
            return False
        return not (self.busy or self.timers or self.batch or any(t.inbox for t in self.targets))

    # -- targets --------------------------------------------------------------------------

    def attach(self, sub: Subscription) -> None:
        """Add a subscription (to its group's target, or as a new broadcast target)."""
        key = f"group:{sub.group}" if sub.group is not None else f"sub:{sub.name}"
        for t in self.targets:
            if t.key == key:
                t.members.append(sub)
                t.refresh()
                break
        else:
            t = Target(key, sub, self.host.config.prefetch)
            self.targets = [*self.targets, t]
        self.refresh_fanout()
        sub.targets.append(t)
        if self.host.running:
            self.start_workers(t, sub)
        self.wake()

    def detach(self, sub: Subscription, target: Target) -> None:
        """Remove a subscription; an emptied target gives its inbox back to the queue."""
        target.members = [m for m in target.members if m is not sub]
        target.wake_all()
        target.workers.pop(sub, None)
        if target.members:
            target.refresh()
            self.refresh_fanout()
            return
        target.closed = True
        target.plain = target.direct = None
        self.set_targets([t for t in self.targets if t is not target])
        leftovers = list(target.inbox)
        target.inbox.clear()
        if not self.targets and self.batch:
            # The dispatcher waits for room mid-batch: its messages are newer than the
            # inbox's, and go back behind them so the queue keeps its order.
            leftovers += self.batch[self.cur :]
            self.batch = []
        self.orphan(leftovers)

    def orphan(self, msgs: list[Message]) -> None:
        """Messages whose target vanished: requeue if nobody else has them, else settle."""
        if self.targets:
            for msg in msgs:
                self.settle(msg, "acked")
        elif msgs:
            self.queue.push_front(msgs)
            self.wake()

    def start_workers(self, target: Target, sub: Subscription) -> None:
        """Create the worker tasks of ``sub`` (none for inline targets)."""
        if target.inline or sub in target.workers:
            return
        for t_sub in target.members:  # a target that stopped being inline needs all workers
            if t_sub not in target.workers:
                target.workers[t_sub] = [
                    self.host.spawn(self.work(target, t_sub), f"bus:{self.name}:{t_sub.name}")
                    for _ in range(t_sub.concurrency)
                ]

    # -- dispatching ----------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatcher: drain the queue in batches into targets; no task per message."""
        HANDLING.set(self.host.handling)  # this task's context: handlers' follow-ups
        queue, loop = self.queue, asyncio.get_running_loop()
        batch_size = self.host.config.batch_size
        while True:
            if not queue.size or not self.targets:
                self.waiter = fut = loop.create_future()
                await fut
                continue
            self.batch = batch = queue.pop_many(batch_size)
            if self.space:
                self.wake_space(len(batch))
            await self.deliver(batch, loop)
            if self.batch is batch:
                self.batch = []

    async def deliver(self, batch: list[Message], loop: asyncio.AbstractEventLoop) -> None:
        """Hand one batch to every target; stop early if :meth:`detach` reclaimed it."""
        ttl = self.config.ttl
        now = time.time() if ttl else 0.0
        stats, every = self.stats, self.host.config.metrics_sample_every
        hooks = self.host.middleware.dispatch
        direct_ok = self.config.handler_timeout is None
        start = 0
        targets = self.targets
        if direct_ok and len(targets) == 1 and targets[0].direct:
            start = await self.deliver_direct(batch, targets[0], hooks, ttl, now)
            if start < 0:
                return  # reclaimed, or handed back for a more urgent message
        for i in range(start, len(batch)):
            msg = batch[i]
            self.cur = i
            if ttl and now - msg.timestamp > ttl:
                stats.expired += 1
                self.settle_all(msg, "expired")
                continue
            tracker = msg._tracker
            if tracker is not None and tracker.seq is not None and msg.attempt > tracker.marked:
                # A stored message: record the attempt, so that one whose delivery kills
                # the process still counts. Replayed ones wait for the record first.
                journal = self.host.journal
                assert journal is not None  # stored messages exist only with a journal
                commit = journal.mark(tracker, msg.attempt, wake=True)
                if tracker.replayed:
                    await self.host.await_mark(commit)
                    if self.batch is not batch:
                        return  # detach() took the batch back meanwhile
            targets = self.targets
            if not targets:  # the last subscriber left during this batch
                self.queue.push_front(batch[i:])
                return
            if tracker is not None:
                tracker.pending = len(targets)
            self._tick += 1
            timed = not self._tick % every
            plain_ok = not (timed or hooks)
            fanout = self.fanout
            if fanout is not None and not hooks and tracker is None and targets is self.fan_of:
                if timed:  # one sample: the mean handler time over this fan-out
                    t0 = _perf()
                    self.call_fanout(fanout, msg)
                    stats.handler_latency.observe((_perf() - t0) / len(fanout))
                else:
                    self.call_fanout(fanout, msg)  # fast path: only plain sync subscribers
                continue
            ok = 0
            waited = False
            for t in targets:
                handler = t.plain
                if handler is not None and plain_ok:  # fast path: one sync subscriber
                    try:
                        result = handler(msg)
                    except Exception as err:
                        self.failed(t, t.members[0], msg, err)
                        continue
                    ok += 1
                    if result is not None and msg._headers and "reply_to" in msg._headers:
                        self.host.answer(msg, result)
                    if tracker is not None:
                        tracker.settle(msg, "acked")
                elif t.inline:
                    self.call_inline(t, msg, timed)
                elif t.direct is not None and direct_ok and len(targets) == 1 and not t.inbox:
                    # One async subscriber, nothing in its inbox or in flight: await it
                    # here and skip the hop through the worker task.
                    self.cur = i + 1  # handed out: a detach must not requeue it
                    waited = True
                    if plain_ok and not self.busy:
                        self.busy += 1
                        try:
                            result = await t.direct(msg)
                        except Exception as err:
                            self.busy -= 1
                            self.failed(t, t.members[0], msg, err)
                        else:
                            self.busy -= 1
                            ok += 1
                            if result is not None and msg._headers and "reply_to" in msg._headers:
                                self.host.answer(msg, result)
                            if tracker is not None:
                                tracker.settle(msg, "acked")
                    else:
                        ok += await self.call_direct(t, msg, timed)
                    if self.batch is not batch:
                        stats.delivered += ok
                        return
                else:
                    while len(t.inbox) >= t.cap and not t.closed:
                        t.room = room = loop.create_future()
                        waited = True
                        await room
                    if self.batch is not batch:
                        stats.delivered += ok
                        return  # the rest went back to the queue, in order
                    if t.closed:
                        self.orphan([msg])
                    else:
                        t.push(msg)
            stats.delivered += ok
            if waited:  # cheap test first: most of the time nothing more urgent is queued
                levels = self.queue._levels
                if (
                    levels
                    and i + 1 < len(batch)
                    and levels[0] < batch[i + 1].priority
                    and self.more_urgent(batch, i + 1)
                ):
                    return

    async def deliver_direct(
        self, batch: list[Message], target: Target, hooks: list[Any], ttl: float | None, now: float
    ) -> int:
        """The common case in a tight loop: one lone async subscriber awaited here (with
        the dispatch hooks and ttl, if any), no acknowledgement tracking. Returns where
        the general loop goes on (``len(batch)`` when done), or -1 when the rest of the
        batch is not ours any more.
        """
        direct, targets = target.direct, self.targets
        member = target.members[0]
        middleware = self.host.middleware
        call_async = middleware.call_async
        # ``before`` hooks alone are called here, without the wrapper's frame.
        befores = middleware.befores if hooks and not middleware.afters else None
        stats, every = self.stats, self.host.config.metrics_sample_every
        levels = self.queue._levels
        n, i, ok = len(batch), 0, 0
        plain = not (hooks or ttl)
        tick = self._tick  # written back before every return
        while i < n:
            msg = batch[i]
            if (
                msg._tracker is not None
                or self.busy
                or target.inbox
                or self.targets is not targets
                or target.direct is not direct
            ):
                break  # the general loop knows what to do
            i += 1
            self.cur = i  # handed out: a detach must not requeue it
            tick += 1
            if plain and tick % every:  # the common case: no hook, no ttl, no sample
                self.busy = 1  # it was 0 (checked above)
                try:
                    result = await direct(msg)
                except Exception as err:
                    self.busy -= 1
                    self.failed(target, member, msg, err)
                else:
                    self.busy -= 1
                    ok += 1
                    if result is not None and msg._headers and "reply_to" in msg._headers:
                        self.host.answer(msg, result)
            elif ttl and now - msg.timestamp > ttl:
                stats.expired += 1
                self.settle_all(msg, "expired")
            else:
                timed = not tick % every
                t0 = _perf() if timed else 0.0
                self.busy += 1
                try:
                    if befores is not None:
                        for before in befores:
                            before(msg, member)
                        result = await direct(msg)
                    else:
                        result = await (call_async(member, msg, None) if hooks else direct(msg))
                except Exception as err:
                    self.busy -= 1
                    self.failed(target, member, msg, err)
                else:
                    self.busy -= 1
                    ok += 1
                    if timed:
                        stats.handler_latency.observe(_perf() - t0)
                    if result is not None and msg._headers and "reply_to" in msg._headers:
                        self.host.answer(msg, result)
            if self.batch is not batch:
                self._tick = tick
                stats.delivered += ok
                return -1
            if levels and i < n and levels[0] < batch[i].priority and self.more_urgent(batch, i):
                self._tick = tick
                stats.delivered += ok
                return -1
        self._tick = tick
        stats.delivered += ok
        return i

    def call_fanout(self, fanout: list[tuple[Target, Any]], msg: Message) -> None:
        """Broadcast to plain sync subscribers: a bare loop of handler calls."""
        failed = 0
        if msg._headers and "reply_to" in msg._headers:  # a request: results are replies
            for t, handler in fanout:
                try:
                    result = handler(msg)
                except Exception as err:
                    failed += 1
                    self.failed(t, t.members[0], msg, err)
                    continue
                if result is not None:
                    self.host.answer(msg, result)
        else:
            for t, handler in fanout:
                try:
                    handler(msg)
                except Exception as err:
                    failed += 1
                    self.failed(t, t.members[0], msg, err)
        self.stats.delivered += len(fanout) - failed

    def more_urgent(self, batch: list[Message], nxt: int) -> bool:
        """After waiting: if a more urgent message arrived meanwhile, hand the rest of the
        batch back to the queue (ahead of its own priority, so FIFO holds) and start over."""
        levels = self.queue._levels
        if nxt >= len(batch) or not levels or levels[0] >= batch[nxt].priority:
            return False
        self.queue.push_front(batch[nxt:])
        return True

    async def call_direct(self, target: Target, msg: Message, timed: bool) -> int:
        """Await a lone async subscriber on the dispatcher; 1 if it succeeded."""
        if self.busy:  # a worker still handles a retry: keep concurrency=1
            target.push(msg)
            return 0
        sub = target.members[0]
        self.busy += 1
        t0 = _perf() if timed else 0.0
        try:
            if self.host.middleware.dispatch:
                result = await self.host.middleware.call_async(sub, msg, None)
            else:
                result = await sub.handler(msg)
        except Exception as err:
            self.busy -= 1
            self.failed(target, sub, msg, err)
            return 0
        self.busy -= 1
        if timed:
            self.stats.handler_latency.observe(_perf() - t0)
        if result is not None and msg._headers and "reply_to" in msg._headers:
            self.host.answer(msg, result)
        tracker = msg._tracker
        if tracker is not None:
            tracker.settle(msg, "acked")
        return 1

    def call_inline(self, target: Target, msg: Message, timed: bool) -> None:
        """Deliver to a sync handler on the dispatcher (no task, no await)."""
        if target.closed:
            self.orphan([msg])
            return
        sub = target.next_member()
        if target.filter is not None and not self.passes(target.filter, msg):
            self.settle(msg, "acked")
            return
        hooks = self.host.middleware.dispatch
        t0 = _perf() if timed else 0.0
        try:
            result = self.host.middleware.call(sub, msg, sub.handler) if hooks else sub.handler(msg)
        except Exception as err:
            if timed:
                self.stats.handler_latency.observe(_perf() - t0)
            self.failed(target, sub, msg, err)
            return
        if timed:
            self.stats.handler_latency.observe(_perf() - t0)
        self.succeeded(sub, msg, result)

    def succeeded(self, sub: Subscription, msg: Message, result: Any) -> None:
        """Count a handled delivery, send a reply if it was a request, settle."""
        self.stats.delivered += 1
        if result is not None and msg._headers and "reply_to" in msg._headers:
            self.host.answer(msg, result)
        tracker = msg._tracker
        if tracker is not None:
            tracker.settle(msg, "acked")

    def passes(self, flt: Any, msg: Message) -> bool:
        """Run a subscriber filter; a filter that raises counts as an error and rejects."""
        try:
            return bool(flt(msg))
        except Exception:
            self.stats.errors += 1
            logger.exception("filter of channel %r raised on message %s", self.name, msg.id)
            return False

    async def work(self, target: Target, sub: Subscription) -> None:
        """Worker task: drain the target inbox through one subscriber's handler."""
        HANDLING.set(self.host.handling)  # this task's context: handlers' follow-ups
        loop = asyncio.get_running_loop()
        inbox, stats = target.inbox, self.stats
        timeout = self.config.handler_timeout
        handler, hooks = sub.handler, self.host.middleware.dispatch
        every = self.host.config.metrics_sample_every
        fast = sub.is_async and timeout is None
        while sub.active:
            if not inbox:
                fut = loop.create_future()
                target.idle.append(fut)
                await fut
                continue
            msg = inbox.popleft()
            if target.room is not None and len(inbox) <= target.cap // 2:
                target.wake_room()
            if target.filter is not None and not self.passes(target.filter, msg):
                self.settle(msg, "acked")
                continue
            self.busy += 1
            self._tick += 1
            timed = not self._tick % every
            if fast and not (timed or hooks):  # fast path: await the handler, no wrapper
                try:
                    result = await handler(msg)
                except Exception as err:
                    self.busy -= 1
                    self.failed(target, sub, msg, err)
                    continue
                self.busy -= 1
                stats.delivered += 1
                if result is not None and msg._headers and "reply_to" in msg._headers:
                    self.host.answer(msg, result)
                tracker = msg._tracker
                if tracker is not None:
                    tracker.settle(msg, "acked")
                continue
            try:
                await self.handle(target, sub, msg, timeout, loop, timed)
            finally:
                self.busy -= 1

    async def handle(
        self,
        target: Target,
        sub: Subscription,
        msg: Message,
        timeout: float | None,
        loop: asyncio.AbstractEventLoop,
        timed: bool,
    ) -> None:
        """One worker delivery, with timeout, hooks, timing and failure handling."""
        t0 = _perf() if timed else 0.0
        try:
            if sub.is_async:
                if self.host.middleware.dispatch:
                    coro = self.host.middleware.call_async(sub, msg, timeout)
                elif timeout is None:
                    coro = sub.handler(msg)
                else:
                    coro = asyncio.wait_for(sub.handler(msg), timeout)
                result = await coro
            elif sub.concurrency > 1:
                result = await loop.run_in_executor(  # with HANDLING (follow-ups at stop)
                    None, contextvars.copy_context().run, self.host.middleware.call, sub, msg,
                    sub.handler,
                )  # fmt: skip
            else:
                result = self.host.middleware.call(sub, msg, sub.handler)
        except Exception as err:
            if timed:
                self.stats.handler_latency.observe(_perf() - t0)
            self.failed(target, sub, msg, err)
            return
        if timed:
            self.stats.handler_latency.observe(_perf() - t0)
        self.succeeded(sub, msg, result)

    # -- failure, retry, dead letters -----------------------------------------------------

    def failed(self, target: Target, sub: Subscription, msg: Message, err: BaseException) -> None:
        """Retry with backoff, or dead-letter once ``max_attempts`` are used."""
        cfg = self.config
        sub.failed += 1
        self.stats.errors += 1
        if isinstance(err, TimeoutError) and cfg.handler_timeout is not None:
            err = TimeoutError(f"handler exceeded handler_timeout={cfg.handler_timeout} s")
        if msg.attempt < cfg.max_attempts:
            self.stats.retried += 1
            delay = min(cfg.retry_backoff * 2 ** (msg.attempt - 1), cfg.retry_backoff_max)
            logger.warning(
                "handler %s failed on %s attempt %d/%d (%r); retrying in %.3g s",
                sub.name, msg.id, msg.attempt, cfg.max_attempts, err, delay,
            )  # fmt: skip
            loop = asyncio.get_running_loop()
            handle: list[asyncio.TimerHandle] = []
            handle.append(loop.call_later(delay, self.retry, target, msg.retry_copy(), handle))
            self.timers.add(handle[0])
            return
        self.stats.dead_lettered += 1
        logger.error(
            "handler %s failed on %s after %d attempts (%r); dead-lettered",
            sub.name, msg.id, msg.attempt, err,
        )  # fmt: skip
        self.host.dead_letter(self, sub, msg, err)  # settles once the dead letter is safe

    def retry(self, target: Target, msg: Message, handle: list[asyncio.TimerHandle]) -> None:
        """Timer callback: deliver the next attempt to the same target."""
        self.timers.discard(handle[0])
        tracker = msg._tracker
        if tracker is not None and tracker.seq is not None and msg.attempt > tracker.marked:
            journal = self.host.journal
            assert journal is not None  # stored messages exist only with a journal
            journal.mark(tracker, msg.attempt, wake=True)
        if target.closed:
            self.orphan([msg])
        elif target.inline:
            self.call_inline(target, msg, False)
        else:
            target.push(msg)

    def settle(self, msg: Message, outcome: Outcome) -> None:
        """One delivery of ``msg`` is finished."""
        tracker = msg._tracker
        if tracker is not None:
            tracker.settle(msg, outcome)

    def settle_all(self, msg: Message, outcome: Outcome) -> None:
        """``msg`` will not be delivered at all (expired, evicted)."""
        tracker = msg._tracker
        if tracker is not None:
            tracker.pending = 1
            tracker.settle(msg, outcome)
