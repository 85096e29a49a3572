"""SessionAPI: Session and RemoteSession both satisfy it, member by member, with the same
signatures (parameter names, kinds and defaults); the pages are typed by it."""

from __future__ import annotations

import inspect

import pytest

from statarb_kit.api import SessionAPI
from statarb_kit.monitor.remote import RemoteSession
from statarb_kit.session import Session

MEMBERS = [name for name in dir(SessionAPI) if not name.startswith("_")] + list(SessionAPI.__annotations__)


def shape(fn) -> list[tuple[str, str, object]]:
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("impl", [Session, RemoteSession])
def test_each_session_has_every_member_of_the_api_with_its_signature(impl):
    assert {"pair", "bars", "status", "source_info", "quote_bars", "held_events", "owns_store"} <= set(MEMBERS)
    for name in MEMBERS:
        declared = inspect.getattr_static(SessionAPI, name, None)
        if name in SessionAPI.__annotations__ and declared is None:  # a plain attribute, set on the instance
            assert name in inspect.getsource(impl), f"{impl.__name__} never sets {name}"
            continue
        mine = inspect.getattr_static(impl, name, None)
        if isinstance(declared, property):  # a property there, or an attribute every instance sets
            assert isinstance(mine, property) or f"self.{name} = " in inspect.getsource(impl), \
                f"{impl.__name__} has no {name}"
            continue
        assert mine is not None, f"{impl.__name__} has no {name}"
        assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(declared), name
        assert shape(mine) == shape(declared), f"{impl.__name__}.{name}{inspect.signature(mine)} is not {name}" \
                                               f"{inspect.signature(declared)}"


def test_nothing_a_viewer_offers_always_raises_and_paper_trading_says_where_it_runs():
    from statarb_kit.errors import StatarbError
    from statarb_kit.paper import PaperDesk

    viewer = RemoteSession("127.0.0.1:8870")
    assert not viewer.owns_store and not hasattr(viewer, "with_store")
    with pytest.raises(StatarbError, match="statarb monitor --paper"):
        PaperDesk(viewer)


def test_the_pages_are_typed_by_the_api():
    from statarb_kit.widgets.dashboard import Dashboard
    from statarb_kit.widgets.watchlist_view import WatchlistView

    for page in (Dashboard, WatchlistView):
        hints = inspect.signature(page.__init__).parameters["session"].annotation
        assert "SessionAPI" in str(hints), (page.__name__, hints)
