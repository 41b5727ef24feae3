"""A creator's public channel: every socket viewing the creator's page gets the public part of
the creator's tips, live and recovered by cursor, never anything private."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from hub.auth import issue_token
from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.events import mark_published, record_events
from ledger.money import Money
from realtime.delivery import MAX_REPLAY
from tests.conftest import JWT_SECRET, SocketProbe, create_user, hub_of_app, token
from tests.money import key
from tests.realtime.test_recovery import publish


async def viewer(live, user: str, creator: str, last_id: int | None = None) -> SocketProbe:
    probe = SocketProbe()
    credentials: dict[str, object] = {"token": token(user, "fan"), "viewing": creator}
    if last_id is not None:
        credentials["viewing_last_event_id"] = last_id
    await probe.connect(live.url, credentials)
    return probe


async def tip(http, fan: str, creator: str, amount: int, message: str) -> dict:
    fan_token = issue_token(JWT_SECRET, fan, Role.FAN, 600, name="Ada L.")
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": amount, "currency": "NGN", "message": message},
        headers={"Authorization": f"Bearer {fan_token}", **key()},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def a_viewer_that_saw_one_tip(live, http, people, sessions, uid) -> tuple[str, dict]:
    """A fan who viewed the creator's page while one tip ("one") came, and left: (fan, tip)."""
    watcher = uid("fan")
    await create_user(sessions, watcher, Role.FAN)
    first = await viewer(live, watcher, people.creator)
    await first.wait_for("public.recovered")
    await tip(http, people.fan, people.creator, 1_000, "one")
    [seen] = await first.wait_for("public.tip")
    await first.close()
    return watcher, seen


async def test_viewers_get_the_public_part_of_a_creators_tips_live(
    live, http, people, sessions, uid
) -> None:
    others = [uid("fan") for _ in range(5)]
    for other in others:
        await create_user(sessions, other, Role.FAN)
    probes = [await viewer(live, user, people.creator) for user in others]
    bystander = SocketProbe()  # not on the creator's page
    await bystander.connect(live.url, {"token": token(uid("fan"), "fan")})
    try:
        for probe in probes:
            [hello] = await probe.wait_for("public.recovered")
            assert hello["channel"] == people.creator and hello["recovered"] is True
        made = await tip(http, people.fan, people.creator, 5_000, "hi")
        for probe in probes:
            [shown] = await probe.wait_for("public.tip")
            assert shown == {
                "id": shown["id"],
                "channel": people.creator,
                "type": "public.tip",
                "occurred_at": shown["occurred_at"],
                "data": {
                    "tip_id": made["id"],
                    "name": "Ada L.",
                    "amount": 5_000,
                    "currency": "NGN",
                    "message": "hi",
                },
            }
        await asyncio.sleep(0.2)
        for probe in probes:  # once each, and nothing of the creator's or the fan's own
            assert len(probe.of_type("public.tip")) == 1
            assert {event for event, _ in probe.events} == {
                "recovered",
                "public.recovered",
                "public.tip",
            }
        assert not bystander.of_type("public.tip")
    finally:
        for probe in [*probes, bystander]:
            await probe.close()


async def test_a_returning_viewer_recovers_the_public_tips_it_missed(
    live, http, people, sessions, uid
) -> None:
    watcher, seen = await a_viewer_that_saw_one_tip(live, http, people, sessions, uid)

    await tip(http, people.fan, people.creator, 2_000, "two")  # nobody watching
    await tip(http, people.fan, people.creator, 3_000, "three")
    back = await viewer(live, watcher, people.creator, seen["id"])
    [outcome] = await back.wait_for("public.recovered")
    try:
        assert outcome["recovered"] is True and outcome["missed"] == 2
        assert [e["data"]["message"] for e in back.of_type("public.tip")] == ["two", "three"]
        assert outcome["last_event_id"] == back.of_type("public.tip")[-1]["id"]
        # the public events came before their recovered, the user's own recovery before both
        names = [event for event, _ in back.events]
        assert names == ["recovered", "public.tip", "public.tip", "public.recovered"]
        await tip(http, people.fan, people.creator, 4_000, "four")
        live_tips = await back.wait_for("public.tip", count=3)
        assert [e["data"]["message"] for e in live_tips] == ["two", "three", "four"]
    finally:
        await back.close()


async def test_a_cursor_that_is_not_one_of_the_creators_public_events_recovers_nothing(
    live, http, people, sessions, uid
) -> None:
    """A viewer cannot learn which private events of a creator exist by trying ids."""
    watcher = uid("fan")
    await create_user(sessions, watcher, Role.FAN)
    await tip(http, people.fan, people.creator, 1_000, "one")
    own = SocketProbe()  # the creator's own socket: its hello's id is a private event's
    await own.connect(live.url, {"token": token(people.creator, "creator")})
    [private] = await own.wait_for("recovered")
    await own.close()
    for cursor in (private["last_event_id"], 10**12):
        probe = await viewer(live, watcher, people.creator, cursor)
        try:
            [outcome] = await probe.wait_for("public.recovered")
            assert outcome["recovered"] is False and outcome["missed"] is None
            assert not probe.of_type("public.tip")
        finally:
            await probe.close()


async def test_the_cursor_of_a_first_visit_recovers_what_came_after(
    live, http, sessions, uid
) -> None:
    """A creator with no public event yet: the first visit's cursor is 0, and a viewer that
    comes back with it gets every public event since."""
    creator, fan, watcher = uid("creator"), uid("fan"), uid("fan")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(100_000, "NGN"))
    await create_user(sessions, watcher, Role.FAN)
    first = await viewer(live, watcher, creator)
    [hello] = await first.wait_for("public.recovered")
    await first.close()
    assert hello["last_event_id"] == 0
    await tip(http, fan, creator, 1_500, "while away")
    back = await viewer(live, watcher, creator, hello["last_event_id"])
    try:
        [outcome] = await back.wait_for("public.recovered")
        assert outcome["recovered"] is True and outcome["missed"] == 1
        assert [e["data"]["amount"] for e in back.of_type("public.tip")] == [1_500]
    finally:
        await back.close()


async def test_a_bad_viewing_cursor_is_refused(live, people, uid) -> None:
    probe = SocketProbe()
    reasons: list = []
    probe.client.on("connect_error", lambda data: reasons.append(data))
    credentials = {
        "token": token(uid("fan"), "fan"),
        "viewing": people.creator,
        "viewing_last_event_id": "-1",
    }
    with pytest.raises(socketio.exceptions.ConnectionError):
        await probe.connect(live.url, credentials)
    assert reasons and reasons[0]["data"]["type"] == "invalid_request"
    assert "viewing_last_event_id" in reasons[0]["data"]["message"]


async def test_private_events_past_the_replay_limit_do_not_cost_a_viewer_its_recovery(
    live, http, people, sessions, uid
) -> None:
    """A busy creator's private events are not the viewer's: only public ones count toward
    the replay limit (and only they are read)."""
    watcher, seen = await a_viewer_that_saw_one_tip(live, http, people, sessions, uid)
    async with unit_of_work(sessions) as uow:
        private = [(people.creator, "test.private", {"n": n}) for n in range(MAX_REPLAY + 1)]
        written = await record_events(uow.session, private)
        await mark_published(uow.session, [event.id for event in written])
    await tip(http, people.fan, people.creator, 2_000, "two")
    back = await viewer(live, watcher, people.creator, seen["id"])
    try:
        [outcome] = await back.wait_for("public.recovered")
        assert outcome["recovered"] is True and outcome["missed"] == 1
        assert [e["data"]["message"] for e in back.of_type("public.tip")] == ["two"]
    finally:
        await back.close()


async def test_viewers_missing_the_same_event_share_one_read_of_the_log(
    live, people, sessions, services, uid
) -> None:
    """A lost bus message: every viewer of the creator fills the same gap from the log, in
    order, and the node reads it once for all of them."""
    watchers = [uid("fan") for _ in range(5)]
    for watcher in watchers:
        await create_user(sessions, watcher, Role.FAN)
    probes = [await viewer(live, watcher, people.creator) for watcher in watchers]
    try:
        for probe in probes:
            await probe.wait_for("public.recovered")
        tip_data = {"tip_id": 1, "fan_name": "Ada L.", "amount": 700, "currency": "NGN"}
        async with unit_of_work(sessions) as uow:
            lost = await record_events(
                uow.session, [(people.creator, "tip.received", {**tip_data, "message": "lost"})]
            )
            kept = await record_events(
                uow.session, [(people.creator, "tip.received", {**tip_data, "message": "kept"})]
            )
            await mark_published(uow.session, [lost[0].id, kept[0].id])
        delivery = hub_of_app(live.server.config.app).realtime.delivery
        reads = delivery.log_reads
        await publish(services, kept)  # the first one never reaches the bus
        for probe in probes:
            shown = await probe.wait_for("public.tip", count=2)
            assert [e["data"]["message"] for e in shown] == ["lost", "kept"]
        assert delivery.log_reads - reads == 1
    finally:
        for probe in probes:
            await probe.close()


async def test_a_creators_goal_and_live_state_go_out_on_the_channel(
    live, http, people, uid
) -> None:
    """The goal counts the tips from its start (read from the ledger), its progress reaches
    viewers as the channel's tips; going live is an event too; a returning viewer recovers
    both, and the profile says where things stand."""
    from tests.conftest import auth

    creator_headers = auth(people.creator, "creator")
    await tip(http, people.fan, people.creator, 7_000, "before the goal")  # not counted
    watching = await viewer(live, uid("fan"), people.creator)
    try:
        [hello] = await watching.wait_for("public.recovered")
        goal = await http.put(
            "/api/v1/goal",
            json={"title": "New microphone", "target": 50_000, "currency": "NGN"},
            headers=creator_headers,
        )
        assert goal.status_code == 200, goal.text
        assert goal.json()["goal"]["raised"] == 0
        [started] = await watching.wait_for("public.goal")
        assert started["data"]["goal"]["title"] == "New microphone"
        assert started["channel"] == people.creator
        await tip(http, people.fan, people.creator, 2_000, "for the mic")
        await watching.wait_for("public.tip", count=1)
        on_air = await http.put(
            "/api/v1/live", json={"live": True, "title": "Friday jam"}, headers=creator_headers
        )
        assert on_air.status_code == 200 and on_air.json()["live"]["title"] == "Friday jam"
        [went_live] = await watching.wait_for("public.live")
        assert went_live["data"]["live"] is True and went_live["data"]["title"] == "Friday jam"
        again = await http.put(
            "/api/v1/live", json={"live": True, "title": "Friday jam"}, headers=creator_headers
        )
        assert again.status_code == 200  # nothing changed: no second event
        profile = await http.get(
            f"/api/v1/creators/{people.creator}", headers=auth(people.fan, "fan")
        )
        assert profile.json()["goal"]["raised"] == 2_000  # the tip before it does not count
        assert profile.json()["live"]["title"] == "Friday jam"
        # a viewer who left after the goal started comes back to the tip and the live state
        back = await viewer(live, uid("fan"), people.creator, started["id"])
        try:
            [outcome] = await back.wait_for("public.recovered")
            assert outcome["recovered"] is True and outcome["missed"] == 2
            replayed = [name for name, _ in back.events if name.startswith("public.")]
            assert replayed == ["public.tip", "public.live", "public.recovered"]  # in order
            assert back.of_type("public.tip")[0]["data"]["amount"] == 2_000
            assert back.of_type("public.live")[0]["data"]["live"] is True
        finally:
            await back.close()
        off = await http.put("/api/v1/live", json={"live": False}, headers=creator_headers)
        assert off.json()["live"] is None
        ended = await http.delete("/api/v1/goal", headers=creator_headers)
        assert ended.status_code == 204
        goals = await watching.wait_for("public.goal", count=2)
        assert goals[-1]["data"] == {"goal": None}
        fan_tries = await http.put(
            "/api/v1/live", json={"live": True}, headers=auth(people.fan, "fan")
        )
        assert fan_tries.status_code == 403
        assert hello["recovered"] is True
    finally:
        await watching.close()
