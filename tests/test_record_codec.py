"""The records the scripts edit have one encoding, written alike by the Lua codec (in Redis)
and the Python one: each decodes what the other encodes, whatever the fields hold."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobmaster.codec import DecodeError
from jobmaster.record_codec import (
    ATTEMPT,
    ATTEMPT_END,
    SCHEDULE_STATE,
    STATES,
    STATUS,
    Kind,
    RecordFormat,
)

# The Lua function names of each format (see common.lua).
LUA: dict[str, tuple[RecordFormat, str]] = {
    "status": (STATUS, "status"),
    "attempt": (ATTEMPT, "attempt"),
    "attempt end": (ATTEMPT_END, "attempt_end"),
    "schedule state": (SCHEDULE_STATE, "schedule_state"),
}

# ARGV[1] encode|decode, ARGV[2] the format's Lua name, then for encode three values per
# field: 1 present | 0 absent, n number | s text, value; for decode the record and its
# number of fields. Returns the record, or two values per field (1 | 0, value), or an error
# reply saying why the record was refused.
HARNESS = """
local mode, kind = ARGV[1], ARGV[2]
local encode = ({status = encode_status, attempt = encode_attempt,
  attempt_end = encode_attempt_end, schedule_state = encode_schedule_state})[kind]
local decode = ({status = decode_status, attempt = decode_attempt,
  attempt_end = decode_attempt_end, schedule_state = decode_schedule_state})[kind]
if mode == 'encode' then
  local values, n = {}, 0
  for i = 3, #ARGV, 3 do
    n = n + 1
    if ARGV[i] == '1' then
      values[n] = ARGV[i + 1] == 'n' and tonumber(ARGV[i + 2]) or ARGV[i + 2]
    end
  end
  -- the first record of a call is packed whole, the next ones concatenated: alike
  local first, again = encode(unpack(values, 1, n)), encode(unpack(values, 1, n))
  if first ~= again then return redis.error_reply('the two encodings differ') end
  return first
end
local values = {decode(ARGV[3])}
if values[1] == nil then return redis.error_reply('refused: ' .. tostring(values[2])) end
local out = {}
for i = 1, tonumber(ARGV[4]) do
  out[#out + 1] = values[i] ~= nil and 1 or 0
  out[#out + 1] = values[i] or ''
end
return out
"""

SOURCE = (files("jobmaster") / "lua" / "common.lua").read_text() + HARNESS
# The same, with the Lua stand-in for cmsgpack that servers without it (fakeredis) use.
FALLBACK = SOURCE.replace("local msgpack = cmsgpack or", "local msgpack = nil or")
assert FALLBACK != SOURCE

# Texts that have something to trip on: separators and JSON's specials, line ends, bytes
# that look like msgpack headers, any unicode; and the empty text (present, unlike an
# absent one); short and past each header size of msgpack.
texts = st.one_of(
    st.text(
        alphabet=st.sampled_from('|{}"\\\n\r\t0 \xc0\xd9é€😀')
        | st.characters(exclude_categories=["Cs"]),
        max_size=40,
    ),
    st.builds(
        lambda n, c: c * n, st.sampled_from([31, 32, 255, 256, 65536]), st.sampled_from("aé")
    ),
)
numbers = st.one_of(
    st.integers(min_value=0, max_value=300),
    st.sampled_from([127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32]),
    st.integers(min_value=0, max_value=10**15 - 1),
)
VALUES: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.STATE: st.sampled_from(sorted(STATES)),
    Kind.COUNT: numbers,
    Kind.BAND: st.integers(min_value=0, max_value=9),
    Kind.NUMBER: numbers,
    Kind.TEXT: texts,
    Kind.WORD: texts,
    Kind.FLAG: st.just(1),
}
REQUIRED = (Kind.STATE, Kind.COUNT, Kind.BAND, Kind.WORD)


def _records(fmt: RecordFormat) -> st.SearchStrategy[dict[str, Any]]:
    required = {name: VALUES[kind] for name, kind in fmt.fields if kind in REQUIRED}
    optional = {name: VALUES[kind] for name, kind in fmt.fields if kind not in REQUIRED}
    return st.fixed_dictionaries(required, optional=optional)


all_records = st.sampled_from(sorted(LUA)).flatmap(
    lambda kind: st.tuples(st.just(kind), _records(LUA[kind][0]))
)


def _run(client: Any, *args: Any) -> Any:
    return client.eval(client.source, 0, *args)


def _lua_decode(
    client: redis.Redis, fmt: RecordFormat, lua_name: str, raw: bytes
) -> dict[str, Any]:
    """What the Lua codec reads in a record, as the Python one would say it."""
    decoded = _run(client, "decode", lua_name, raw, len(fmt.fields))
    seen: dict[str, Any] = {}
    for i, (name, _) in enumerate(fmt.fields):
        if decoded[2 * i] == 1:
            value = decoded[2 * i + 1]
            seen[name] = value.decode() if isinstance(value, bytes) else value
    return seen


@pytest.fixture(scope="module", params=["cmsgpack", "Lua stand-in"])
def client(redis_server: Any, request: pytest.FixtureRequest) -> Any:
    c = redis.Redis.from_url(redis_server.url)
    c.source = SOURCE if request.param == "cmsgpack" else FALLBACK  # type: ignore[attr-defined]
    yield c
    c.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(all_records)
def test_lua_and_python_encode_alike_and_decode_each_other(
    client: redis.Redis, case: tuple[str, dict[str, Any]]
) -> None:
    kind, record = case
    fmt, lua_name = LUA[kind]
    args: list[Any] = []
    for name, field_kind in fmt.fields:
        number = field_kind not in (Kind.STATE, Kind.TEXT, Kind.WORD)
        args += ["1", "n" if number else "s", record[name]] if name in record else ["0", "s", ""]
    by_lua = _run(client, "encode", lua_name, *args)
    by_python = fmt.encode(record)
    assert by_lua == by_python  # one encoding, byte for byte
    assert fmt.decode(by_lua) == record  # Python reads what Lua wrote
    assert _lua_decode(client, fmt, lua_name, by_python) == record  # and the other way


def _status(**fields: Any) -> bytes:
    return STATUS.encode({"s": "queued", "a": 1, "b": 3, **fields})


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("status", _status(t="abc")[:-2]),  # cut short (inside a text)
        ("status", _status(raw="r") + b"\x01"),  # a value past the last field
        ("status", _status().replace(b"\xa6queued", b"\xa6queuex")),  # not a state
        ("status", _status().replace(b"\x03", b"\x0c", 1)),  # band 12
        ("status", _status().replace(b"\x01", b"\xa11", 1)),  # attempts as text
        ("status", _status(e="1-0").replace(b"\xa31-0", b"\x05")),  # entry as a number
        ("status", _status(k=1).replace(b"\x01\xc0\xc0", b"\xc3\xc0\xc0")),  # flag true
        ("status", b""),
        ("status", b'{"a":0,"b":0,"s":"queued","e":'),  # JSON cut short
        ("status", b"[1, 2"),
        ("attempt", ATTEMPT.encode({"n": 1, "w": "w-1"})[:3]),  # cut inside a text
        ("attempt", b"\xa1x"),  # no attempt number
        ("attempt", ATTEMPT.encode({"n": 1}) + ATTEMPT_END.encode({"f": 2, "o": "lost"})),
        ("attempt end", ATTEMPT_END.encode({"f": 1, "o": "lost"})[:-1]),
        ("attempt end", b"\x01"),  # no outcome
        ("attempt end", b"\xa4lost\x01"),  # the outcome first
        ("schedule state", SCHEDULE_STATE.encode({"r": 1, "p": 1}).replace(b"\x01", b"\x02")),
    ],
)
def test_both_codecs_refuse_the_same_unreadable_records(
    client: redis.Redis, kind: str, raw: bytes
) -> None:
    fmt, lua_name = LUA[kind]
    with pytest.raises(DecodeError):
        fmt.decode(raw)
    with pytest.raises(redis.ResponseError, match="refused"):
        _run(client, "decode", lua_name, raw, len(fmt.fields))


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        (
            "status",
            b'{"a":2,"b":5,"s":"active","t":"w-1/2","l":1,"k":1,"x":"E","m":"a \\"b\\""}',
            {"s": "active", "a": 2, "b": 5, "t": "w-1/2", "l": 1, "k": 1, "x": "E", "m": 'a "b"'},
        ),
        (
            "attempt",
            b'{"n":1,"w":"w-1","h":"h\\u00e9","p":7,"s":10,"f":20,"o":"failed","tb":"T"}',
            {"n": 1, "w": "w-1", "h": "hé", "p": 7, "s": 10, "f": 20, "o": "failed", "tb": "T"},
        ),
        (
            "schedule state",
            b'{"r":12,"d":30,"l":20,"j":"s@20"}',
            {"r": 12, "d": 30, "l": 20, "j": "s@20"},
        ),
    ],
)
def test_both_codecs_read_json_records_of_earlier_versions_alike(
    client: redis.Redis, kind: str, raw: bytes, expected: dict[str, Any]
) -> None:
    fmt, lua_name = LUA[kind]
    assert fmt.decode(raw) == expected
    # the scripts read the fields of the format (an attempt's opening ones; its end is
    # written apart, without reading this record)
    assert _lua_decode(client, fmt, lua_name, raw) == {
        name: value for name, value in expected.items() if name in fmt.names
    }
