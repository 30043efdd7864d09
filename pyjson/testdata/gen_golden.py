#!/usr/bin/python3
"""Generates golden_data_test.go: what CPython's json.loads, json.dumps and
str()/repr() give, as Go literals. Run from pyjson/:

    python3 testdata/gen_golden.py > golden_data_test.go && gofmt -w golden_data_test.go

The Go tests never run Python; the output is committed."""
import json, random, struct, sys, unicodedata

rng = random.Random(20260114)


def golit(b):
    if isinstance(b, str):
        b = b.encode('utf-8')
    out = ['"']
    for c in b:
        if c == 0x22:
            out.append('\\"')
        elif c == 0x5c:
            out.append('\\\\')
        elif 0x20 <= c < 0x7f:
            out.append(chr(c))
        else:
            out.append('\\x%02x' % c)
    out.append('"')
    return ''.join(out)


def rand_char():
    # Characters unassigned in this Python's Unicode (Cn) are left out: a
    # newer Unicode in Go may assign them, and Str follows unicode.IsPrint.
    while True:
        c = rand_char1()
        if unicodedata.category(c) != 'Cn':
            return c


def rand_char1():
    k = rng.random()
    if k < 0.5:
        return chr(rng.randrange(0x20, 0x7f))
    if k < 0.6:
        return chr(rng.randrange(0, 0x20))
    if k < 0.7:
        return rng.choice('"\\/\'\x7f\x85\xa0\xad')
    if k < 0.8:
        return chr(rng.randrange(0x80, 0x800))
    if k < 0.9:
        c = rng.randrange(0x800, 0x10000)
        return chr(c) if not 0xd800 <= c < 0xe000 else '\ufffd'
    return chr(rng.randrange(0x10000, 0x110000))


def rand_str():
    return ''.join(rand_char() for _ in range(rng.randrange(0, 12)))


def rand_float():
    k = rng.random()
    if k < 0.3:
        while True:
            f = struct.unpack('<d', rng.getrandbits(64).to_bytes(8, 'little'))[0]
            if f == f:
                return f
    if k < 0.8:
        return rng.choice([-1, 1]) * rng.randrange(1, 10**rng.randrange(1, 18)) * 10.0**rng.randrange(-25, 25)
    return rng.choice([0.0, -0.0, 1.0, 0.5, 1e16, 1e15, 1e-4, 1e-5, 0.1, 1/3, 2.0**63, 5e-324,
                       1.7976931348623157e308, float('inf'), float('-inf'), float('nan')])


def rand_int():
    k = rng.random()
    if k < 0.6:
        return rng.randrange(-1000, 1000)
    if k < 0.8:
        return rng.choice([2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 10**18, 10**19 - 1, -10**19 + 1])
    return rng.randrange(-10**rng.randrange(1, 60), 10**rng.randrange(1, 60))


def rand_value(depth=0):
    k = rng.random()
    if depth < 4 and k < 0.15:
        return [rand_value(depth + 1) for _ in range(rng.randrange(0, 5))]
    if depth < 4 and k < 0.3:
        return {rand_str(): rand_value(depth + 1) for _ in range(rng.randrange(0, 5))}
    return rng.choice([None, True, False, rand_int(), rand_float(), rand_str(), rand_str()])


def ws():
    return ''.join(rng.choice(' \t\n\r') for _ in range(rng.randrange(0, 3)))


def to_text(v):
    """Serialises with random whitespace, escapes and duplicate keys."""
    if isinstance(v, list):
        return '[' + ws() + (',' + ws()).join(to_text(e) + ws() for e in v) + ']'
    if isinstance(v, dict):
        items = list(v.items())
        if items and rng.random() < 0.3:
            items.append((items[0][0], rand_value(3)))  # duplicate key
        return '{' + ws() + ',' .join(ws() + to_text(k) + ws() + ':' + ws() + to_text(e) + ws() for k, e in items) + '}'
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=rng.random() < 0.5)
    if isinstance(v, float) and v == v and v not in (float('inf'), float('-inf')) and rng.random() < 0.3:
        return repr(v).replace('e+', rng.choice(['e+', 'E', 'e']))
    return json.dumps(v)


decode_inputs = [
    b'null', b'true', b'false', b'0', b'-0', b'-0.0', b'1', b'-1', b'2.5', b'1.0', b'1E5', b'1e+5', b'1e-5',
    b'0.1e-2', b'1e400', b'-1e400', b'1e-400', b'NaN', b'Infinity', b'-Infinity', b'[NaN, Infinity, -Infinity]',
    b'9223372036854775807', b'-9223372036854775808', b'9223372036854775808', b'-9223372036854775809',
    b'123456789012345678', b'1234567890123456789', b'12345678901234567890123456789',
    ('1' * 4300).encode(), ('-' + '1' * 4300).encode(), ('1' * 4301).encode(), ('-' + '1' * 4301).encode(),
    ('1' * 5000 + '.0').encode(), ('0.' + '1' * 5000).encode(),
    b'""', b'"abc"', b'"a/b<>&"', b'"\\/"', b'"\\"\\\\\\/\\b\\f\\n\\r\\t"', b'"\\u00e9\\u00E9"', b'"\\uD83D\\uDE00"',
    '"é😀\u2028\x7f"'.encode(), b'"\\u0000"', b'"\\u001f"',
    b'[]', b'{}', b'[ ]', b'{ }', b' [1 , 2] ', b'\t\n\r 1\r\n\t ', b'[[[]]]', b'{"a": {"b": [{}]}}',
    b'{"a":1,"a":2,"b":3,"a":4}', b'{"b":1,"a":2,"b":null}',
    b'{"type": "chat_message", "message": "Hello"}', b'{"type": 5}', b'{"type": 2.5}', b'{"type": true}',
    b'{"type": null}', b'{"type": ""}', b'{"type": [1, "a", null, {"k": false}]}',
    b'["it\'s", "say \\"hi\\"", "both \' \\"", "\\\\"]',
    # errors
    b'', b' ', b'\x0c1', b'\xef\xbb\xbf1', b'nan', b'-NaN', b'inf', b'+1', b'01', b'-', b'.5', b'1.', b'1.e5', b'1e',
    b'1e+', b'-01', b'[1,]', b'{"a":1,}', b'[1 2]', b'{"a" 1}', b'{a:1}', b'{"a":1 "b":2}', b'[', b'{', b'{"a"',
    b'{"a":', b'"abc', b'"\\x"', b'"\\u12"', b'"\\u12g4"', b'"\\U0041"', b'"\t"', b'"\x1f"', b'"\n"', b'"\\',
    b'true false', b'tru', b'nul', b'[1] x', b'"\xff"', b'"\xc3"', b'"\xed\xa0\x80"', b'\x00', b'1 \x00',
    b'\xc2\xa01', b'"\\ud800\\uZZZZ"', b'{"a":1}}', b'[1]]', b'True', b'None', b"'a'",
]
for _ in range(250):
    decode_inputs.append(to_text(rand_value()).encode())


def loads(b):
    try:
        return True, json.loads(b.decode('utf-8'))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False, None


print('// Code generated by testdata/gen_golden.py with Python %s; DO NOT EDIT.' % sys.version.split()[0])
print()
print('package pyjson')
print()
print('// decodeGolden: json.loads(in); then json.dumps and str of the result.')
print('var decodeGolden = []struct {')
print('\tin, dumps, str string')
print('\terr             bool')
print('}{')
for b in decode_inputs:
    ok, v = loads(b)
    if ok:
        print('\t{in: %s, dumps: %s, str: %s},' % (golit(b), golit(json.dumps(v)), golit(str(v))))
    else:
        print('\t{in: %s, err: true},' % golit(b))
print('}')
print()
print('// floatGolden: repr(f) and json.dumps(f) for the float with these bits.')
print('var floatGolden = []struct {')
print('\tbits        uint64')
print('\trepr, dumps string')
print('}{')
for _ in range(600):
    f = rand_float()
    bits = struct.unpack('<Q', struct.pack('<d', f))[0]
    print('\t{0x%016x, %s, %s},' % (bits, golit(repr(f)), golit(json.dumps(f))))
print('}')
print()
print('// stringGolden: json.dumps(s) and repr(s).')
print('var stringGolden = []struct{ s, dumps, repr string }{')
fixed = ['', 'abc', "it's", 'say "hi"', 'both \' "', '\\', '\n\t\r\x00\x1f\x7f\x80\x9f\xa0\xad\xe9',
         '\u200b\ufeff\u2028\u2029\u3000\ue000\ufffd\uffff', '\U0001F600\U000e0001\U0010ffff\U000f0000',
         'a/b<>&', '\b\f\x0b']
for s in fixed + [rand_str() for _ in range(300)]:
    print('\t{%s, %s, %s},' % (golit(s), golit(json.dumps(s)), golit(repr(s))))
print('}')
