"""PutMedia's acknowledgement parser: the service's lines, the ways a connection splits them, and garbage."""
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.kvs.acks import ERROR_IDS, Ack, AckProtocolError, AckReader, is_retryable, parse_line
from roadedge.core.errors import RoadedgeError

SAMPLE = (b'{"EventType":"BUFFERING","FragmentTimecode":1700000000000,"FragmentNumber":"91343852333181432392682062607743'
          b'920146264772256"}\n'
          b'{"EventType":"RECEIVED","FragmentTimecode":1700000000000,"FragmentNumber":"913438523331814323926820626077439'
          b'20146264772256"}\r\n'
          b'\n   \r\n'
          b'{"EventType":"IDLE"}\n'
          b'{"EventType":"ERROR","FragmentTimecode":1700000002000,"FragmentNumber":"7","ErrorId":4004,"Extra":[1,2]}\n')


def test_the_services_lines_become_acks():
    reader = AckReader()
    acks = reader.feed(SAMPLE)
    assert [a.event_type for a in acks] == ["BUFFERING", "RECEIVED", "IDLE", "ERROR"]
    assert acks[0].fragment_timecode == 1700000000000
    assert acks[0].fragment_number == "91343852333181432392682062607743920146264772256"
    assert acks[2] == Ack("IDLE")
    assert (acks[3].error_id, acks[3].error_text) == (4004, ERROR_IDS[4004])
    assert (reader.acks, reader.keepalives, reader.malformed) == (4, 2, 0)


def test_numbers_as_strings_the_documented_wrapper_and_a_last_line_without_newline():
    reader = AckReader()
    wrapped = b'{"Acknowledgement": {"EventType": "persisted", "FragmentTimecode": "12", "FragmentNumber": 34}}\n'
    assert reader.feed(wrapped) == [Ack("PERSISTED", 12, "34")]
    assert reader.feed(b'{"EventType":"ERROR","ErrorId":"5001"}') == []
    assert reader.close() == [Ack("ERROR", error_id=5001, error_text=ERROR_IDS[5001])]


@pytest.mark.parametrize("line", [b"not json", b"\xff\xfe", b"[1]", b'{"EventType":"NOPE"}', b'{"FragmentTimecode":1}',
                                  b'{"EventType":"RECEIVED","FragmentTimecode":true}',
                                  b'{"EventType":"RECEIVED","FragmentTimecode":1.5}',
                                  b'{"EventType":"ERROR","ErrorId":"-1"}', b"[" * 50000])
def test_a_malformed_line_is_counted_and_skipped(line):
    reader = AckReader()
    assert reader.feed(line + b'\n{"EventType":"IDLE"}\n') == [Ack("IDLE")]
    assert reader.malformed == 1
    with pytest.raises(ValueError):
        parse_line(line)


def test_an_overlong_line_is_fatal_and_keeps_the_acks_before_it():
    reader = AckReader(max_line=100)
    with pytest.raises(AckProtocolError) as caught:
        reader.feed(b'{"EventType":"IDLE"}\n' + b"x" * 101)
    assert caught.value.acks == [Ack("IDLE")]
    assert isinstance(caught.value, RoadedgeError)
    with pytest.raises(AckProtocolError):
        reader.feed(b'\n{"EventType":"IDLE"}\n')


def test_error_ids_and_what_is_worth_retrying():
    for known in (4000, 4002, 4004, 4006, 4011, 5000, 5001):
        assert known in ERROR_IDS
    assert [i for i in sorted(ERROR_IDS) if is_retryable(i)] == [4000, 4003, 5000, 5001]
    assert is_retryable(5999) and not is_retryable(4999) and not is_retryable(None) and not is_retryable(True)


def test_the_parser_is_python_37_and_pure():
    """It runs on the device (Python 3.7) and has no sockets or clocks to test around."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    result = subprocess.run([vermin if os.path.exists(vermin) else "vermin", "-t=3.7-", "--no-tips", "--violations",
                             "edge/kvs"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert result.returncode == 0, result.stdout.decode()
    with open(os.path.join(root, "edge", "kvs", "acks.py")) as source:
        imports = {line.split()[1] for line in source if line.startswith(("import ", "from "))}
    assert imports == {"json", "roadedge.core.errors"}


# -- properties -------------------------------------------------------------------------------------------------

ack_objects = st.fixed_dictionaries(
    {"EventType": st.sampled_from(["BUFFERING", "RECEIVED", "PERSISTED", "ERROR", "IDLE", "idle", "OTHER"])},
    optional={"FragmentTimecode": st.one_of(st.integers(0, 2 ** 63), st.text(max_size=3)),
              "FragmentNumber": st.one_of(st.integers(0, 10 ** 48).map(str), st.integers(0, 9)),
              "ErrorId": st.one_of(st.sampled_from(sorted(ERROR_IDS)), st.integers(-5, 9999), st.booleans()),
              "Unknown": st.lists(st.integers(), max_size=2)})
lines = st.one_of(ack_objects.map(lambda obj: json.dumps(obj).encode()), st.binary(max_size=40),
                  st.sampled_from([b"", b" ", b"\r", b"\t \r", b"{", b"}"]))
streams = st.tuples(st.lists(st.tuples(lines, st.sampled_from([b"\n", b"\r\n", b"\n\n"])), max_size=12),
                    st.binary(max_size=20)).map(lambda t: b"".join(a + b for a, b in t[0]) + t[1])


def outcome(pieces, max_line):
    """Everything a caller sees: the acks in order, a marker for the fatal error, the counters."""
    reader, seen = AckReader(max_line=max_line), []
    for piece in pieces:
        try:
            seen.extend(reader.feed(piece))
        except AckProtocolError as err:
            seen.extend(err.acks)
            seen.append("fatal")
            return seen, reader.malformed, reader.acks
    seen.extend(reader.close())
    return seen, reader.malformed, reader.acks


def split(data, cuts):
    points = sorted(set(min(c, len(data)) for c in cuts))
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


def test_any_split_gives_the_same_acks_as_whole():
    count = {"inputs": 0, "acks": 0, "fatal": 0}

    @given(data=st.one_of(streams, st.binary(max_size=300)), cuts=st.lists(st.integers(0, 400), max_size=30),
           max_line=st.sampled_from([64, 1024]))
    def check(data, cuts, max_line):
        count["inputs"] += 1
        whole = outcome([data], max_line)
        assert outcome(split(data, cuts), max_line) == whole
        assert outcome([bytes([b]) for b in data], max_line) == whole
        count["acks"] += len([a for a in whole[0] if a != "fatal"])
        count["fatal"] += "fatal" in whole[0]

    check()
    print("\nack split property: {inputs} generated inputs, {acks} acks, {fatal} fatal".format(**count))
    assert count["inputs"] > 0 and count["acks"] > 0


def test_random_bytes_raise_nothing_but_roadedge_errors():
    count = {"inputs": 0}

    @given(pieces=st.lists(st.binary(max_size=200), max_size=10), max_line=st.sampled_from([16, 64, 65536]))
    def check(pieces, max_line):
        count["inputs"] += 1
        reader = AckReader(max_line=max_line)
        for piece in pieces:
            try:
                for ack in reader.feed(piece):
                    assert ack.event_type in ("BUFFERING", "RECEIVED", "PERSISTED", "ERROR", "IDLE")
            except RoadedgeError:
                pass
        reader.close()

    check()
    print("\nack random-bytes property: {inputs} generated inputs".format(**count))
    assert count["inputs"] > 0
