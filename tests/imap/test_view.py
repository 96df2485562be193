"""
A session's view of its mailbox: sequence numbers stay put until the
session may report expunges, new mail is appended, and the EXPUNGE numbers
it reports, applied in order by a client, give the client the server's
list.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gk.imap.view import MailboxView


def test_sequence_numbers_map_to_uids_and_back() -> None:
    view = MailboxView(7, [10, 3, 5])
    assert len(view) == 3 and view.uidvalidity == 7 and view.max_uid == 10
    assert [view.uid_of(n) for n in (1, 2, 3)] == [3, 5, 10]
    assert view.seq_of(5) == 2 and view.seq_of(4) is None
    assert list(view.uids_in([(2, 9)])) == [(2, 5), (3, 10)]
    assert list(view.uids_between([(4, 4294967295)])) == [(2, 5), (3, 10)]
    assert list(view.uids_in([(3, 1), (2, 2)])) == [(1, 3), (2, 5), (3, 10)]


def test_an_expunge_elsewhere_waits_until_it_may_be_reported() -> None:
    view = MailboxView(1, [1, 2, 3, 4, 5])
    view.expunged_elsewhere([2, 4, 99])
    # While answering a FETCH, the numbers do not move.
    assert len(view) == 5 and view.uid_of(4) == 4 and view.is_vanished(4)
    # Reported in order: 2 goes (seq 2); then 4, now at seq 3.
    assert view.flush_expunges() == [(2, 2), (3, 4)]
    assert [view.uid_of(n) for n in range(1, len(view) + 1)] == [1, 3, 5]
    assert view.flush_expunges() == []


def test_new_mail_is_appended_once() -> None:
    view = MailboxView(1, [1, 2])
    assert view.add([3, 4, 2]) == 4
    assert view.add([4]) == 0
    assert view.uid_of(4) == 4


@given(
    st.sets(st.integers(1, 500), max_size=60),
    st.data(),
)
def test_a_client_applying_the_reported_expunges_ends_with_the_servers_list(
    uids: set[int], data: st.DataObject
) -> None:
    view = MailboxView(1, uids)
    client = sorted(uids)  # what the client believes, by sequence number
    gone = data.draw(st.sets(st.sampled_from(sorted(uids)))) if uids else set()
    view.expunged_elsewhere(gone)
    for seq, _uid in view.flush_expunges():
        del client[seq - 1]
    assert client == sorted(uids - gone)
    assert [view.uid_of(n) for n in range(1, len(view) + 1)] == client
