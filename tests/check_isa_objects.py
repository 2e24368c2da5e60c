#!/usr/bin/env python3
"""Each kernel family's machine code uses exactly the extensions its run-time check verifies.

The installed library is one binary for every x86-64 CPU: the portable core must run on baseline
x86-64, the AVX-512 family on any CPU for which amxq_cpu_has_avx512() is true (AVX-512 F, BW,
VL, DQ, VNNI, AVX2, FMA, F16C: src/dispatch/cpu.c), the AMX family on those plus AMX-TILE and
AMX-INT8. A compiler flag added to a family, or an intrinsic of a newer extension, shows up here
as an instruction outside that set, instead of as SIGILL on a Cascade Lake in production.

Usage:
  check_isa_objects.py OBJDUMP LIBAMXQ.a [--avx512 LIB.a] [--amx LIB.a]
  check_isa_objects.py --selftest
The members of LIBAMXQ.a that also appear in a family library are checked against that family's
rules; every other member is core code.
"""
import re
import subprocess
import sys

# Beyond baseline x86-64 (SSE2), by extension. Matched against the mnemonic.
SSE3_UP = {
    # SSE3
    'addsubps', 'addsubpd', 'haddps', 'haddpd', 'hsubps', 'hsubpd', 'lddqu', 'movddup',
    'movshdup', 'movsldup', 'monitor', 'mwait',
    # SSSE3
    'pshufb', 'palignr', 'pabsb', 'pabsw', 'pabsd', 'phaddw', 'phaddd', 'phaddsw', 'phsubw',
    'phsubd', 'phsubsw', 'pmaddubsw', 'pmulhrsw', 'psignb', 'psignw', 'psignd',
    # SSE4.1 / SSE4.2
    'ptest', 'pblendw', 'pblendvb', 'blendps', 'blendpd', 'blendvps', 'blendvpd', 'pminsb',
    'pminsd', 'pminuw', 'pminud', 'pmaxsb', 'pmaxsd', 'pmaxuw', 'pmaxud', 'pmulld', 'pmuldq',
    'packusdw', 'pcmpeqq', 'pcmpgtq', 'pextrb', 'pextrd', 'pextrq', 'pinsrb', 'pinsrd', 'pinsrq',
    'extractps', 'insertps', 'roundps', 'roundpd', 'roundss', 'roundsd', 'dpps', 'dppd',
    'mpsadbw', 'phminposuw', 'movntdqa', 'crc32', 'pcmpestri', 'pcmpestrm', 'pcmpistri',
    'pcmpistrm',
    # POPCNT, LZCNT (ABM), MOVBE
    'popcnt', 'lzcnt', 'movbe',
}
for ext in ('bw', 'wd', 'dq'):
    SSE3_UP.update({'pmovsx' + ext, 'pmovzx' + ext})
SSE3_UP.update({'pmovsxbd', 'pmovsxbq', 'pmovsxwq', 'pmovzxbd', 'pmovzxbq', 'pmovzxwq'})

# BMI1 / BMI2: not in the families' flags. (tzcnt is not here: compilers emit `rep bsf`, which
# disassembles as tzcnt and runs as bsf on CPUs without BMI1.)
BMI = {'andn', 'bextr', 'blsi', 'blsmsk', 'blsr', 'bzhi', 'pdep', 'pext', 'mulx', 'rorx', 'sarx',
       'shlx', 'shrx'}

# AVX-512 extensions beyond F/BW/VL/DQ/VNNI, and other extensions the families must not use.
NOT_IN_AVX512_FAMILY = {
    # VBMI
    'vpermb', 'vpermi2b', 'vpermt2b', 'vpmultishiftqb',
    # VBMI2
    'vpcompressb', 'vpcompressw', 'vpexpandb', 'vpexpandw', 'vpshldw', 'vpshldd', 'vpshldq',
    'vpshrdw', 'vpshrdd', 'vpshrdq', 'vpshldvw', 'vpshldvd', 'vpshldvq', 'vpshrdvw', 'vpshrdvd',
    'vpshrdvq',
    # BF16
    'vcvtne2ps2bf16', 'vcvtneps2bf16', 'vdpbf16ps',
    # IFMA, VPOPCNTDQ, BITALG, CD, VP2INTERSECT
    'vpmadd52luq', 'vpmadd52huq', 'vpopcntb', 'vpopcntw', 'vpopcntd', 'vpopcntq',
    'vpshufbitqmb', 'vpconflictd', 'vpconflictq', 'vplzcntd', 'vplzcntq', 'vpbroadcastmb2q',
    'vpbroadcastmw2d', 'vp2intersectd', 'vp2intersectq',
    # GFNI, VAES, VPCLMULQDQ
    'vgf2p8affineqb', 'vgf2p8affineinvqb', 'vgf2p8mulb', 'vaesenc', 'vaesenclast', 'vaesdec',
    'vaesdeclast', 'vpclmulqdq',
    # AVX-VNNI-INT8 / INT16 (the VEX-only byte/word forms)
    'vpdpbssd', 'vpdpbssds', 'vpdpbsud', 'vpdpbsuds', 'vpdpbuud', 'vpdpbuuds', 'vpdpwsud',
    'vpdpwsuds', 'vpdpwusd', 'vpdpwusds', 'vpdpwuud', 'vpdpwuuds',
    # ERI, PF, 4FMAPS, 4VNNIW (Xeon Phi)
    'vexp2ps', 'vexp2pd', 'vrcp28ps', 'vrsqrt28ps', 'v4fmaddps', 'vp4dpwssd',
} | BMI
FP16_ALLOWED = {'vcvtph2ps', 'vcvtps2ph'}  # F16C / AVX512F, not AVX512-FP16
FP16_RE = re.compile(r'^v\w*(ph|sh)$|^vcvtph2psx$|^vcvt\w*2ph\w*$')
TILE_ALLOWED = {'ldtilecfg', 'sttilecfg', 'tilerelease', 'tilezero', 'tileloadd', 'tileloaddt1',
                'tilestored', 'tdpbssd', 'tdpbsud', 'tdpbusd', 'tdpbuud'}
TILE_RE = re.compile(r'^(t[a-z0-9]*(tile|dp|mm|cvt|trans)[a-z0-9]*|ldtilecfg|sttilecfg)$')


def violations(family, insns):
    """[(mnemonic, why)] for the instructions of one object that its family may not use."""
    bad = []
    for mn, prefix in insns:
        if family == 'core':
            if mn.startswith('v') and mn not in ('verr', 'verw'):
                bad.append((mn, 'AVX/AVX-512 in baseline code'))
            elif mn in SSE3_UP or mn in BMI:
                bad.append((mn, 'beyond baseline x86-64'))
            elif TILE_RE.match(mn):
                bad.append((mn, 'AMX in baseline code'))
            continue
        if prefix == '{vex}':
            bad.append((mn, 'VEX-encoded VNNI (AVX-VNNI), not AVX512-VNNI'))
        elif mn in NOT_IN_AVX512_FAMILY:
            bad.append((mn, 'extension not checked by amxq_cpu_has_avx512()'))
        elif FP16_RE.match(mn) and mn not in FP16_ALLOWED:
            bad.append((mn, 'AVX512-FP16'))
        elif TILE_RE.match(mn):
            if family != 'amx':
                bad.append((mn, 'AMX outside the AMX family'))
            elif mn not in TILE_ALLOWED:
                bad.append((mn, 'AMX extension other than AMX-TILE / AMX-INT8'))
    return bad


def disassemble(objdump, path):
    """[(key, [(mnemonic, prefix)])] for the members of an archive (or one object). Members are
    keyed by name and the functions they define, since two sources may share a file name."""
    out = subprocess.run([objdump, '-d', '--no-show-raw-insn', path], check=True,
                         capture_output=True, text=True).stdout
    members, cur = [], None
    for line in out.splitlines():
        m = re.match(r'^(\S+):\s+file format', line)
        if m:
            cur = (m.group(1).rsplit("/", 1)[-1], [], [])
            members.append(cur)
            continue
        f = re.match(r'^[0-9a-f]+ <([^>]+)>:$', line)
        if f and cur is not None:
            cur[2].append(f.group(1))
            continue
        if cur is None or '\t' not in line or not re.match(r'^\s+[0-9a-f]+:', line):
            continue
        words = line.split('\t', 1)[1].split()
        prefix = None
        while words and (words[0] in ('{vex}', '{evex}', 'lock', 'rep', 'repz', 'repnz', 'notrack',
                                      'data16', 'cs', 'ds', 'bnd') or words[0].startswith('{')):
            if words[0] in ('{vex}', '{evex}'):
                prefix = words[0]
            words = words[1:]
        if words:
            cur[1].append((words[0], prefix))
    return [((name, frozenset(funcs)), insns) for name, insns, funcs in members]


def check(objdump, product, families):
    family_of = {}
    for fam, lib in families:
        for key, _ in disassemble(objdump, lib):
            family_of[key] = fam
    failures = 0
    seen = {'core': set(), 'avx512': set(), 'amx': set()}
    for key, insns in disassemble(objdump, product):
        fam = family_of.get(key, 'core')
        member = key[0]
        seen[fam].update(mn for mn, _ in insns)
        bad = violations(fam, insns)
        for mn, why in sorted(set(bad)):
            print(f'FAIL {member} ({fam}): {mn}: {why}')
            failures += 1
    # The check must see what it is about: the families' own instructions.
    expect = {'avx512': 'vpdpbusd', 'amx': 'tdpbssd'}
    for fam, _ in families:
        if expect[fam] not in seen[fam]:
            print(f'FAIL {fam}: no {expect[fam]} found: the family objects were not recognised')
            failures += 1
    for fam in ('core',) + tuple(f for f, _ in families):
        print(f'{fam}: {len(seen[fam])} distinct mnemonics checked')
    return failures


def selftest():
    """The rules catch what they are meant to catch (a check that cannot fail proves nothing)."""
    cases = [
        ('avx512', [('vpermb', None)], True), ('avx512', [('vpdpbusd', '{vex}')], True),
        ('avx512', [('vaddph', None)], True), ('avx512', [('vcvtph2ps', None)], False),
        ('avx512', [('vdpbf16ps', None)], True), ('avx512', [('tdpbssd', None)], True),
        ('avx512', [('shlx', None)], True), ('avx512', [('vpdpbusd', None)], False),
        ('amx', [('tdpbssd', None)], False), ('amx', [('tdpbf16ps', None)], True),
        ('amx', [('tdpfp16ps', None)], True), ('amx', [('tileloaddt1', None)], False),
        ('core', [('vmovdqu', None)], True), ('core', [('pshufb', None)], True),
        ('core', [('movdqa', None)], False), ('core', [('ldtilecfg', None)], True),
        ('core', [('tzcnt', None)], False),
    ]
    failures = 0
    for fam, insns, should_fail in cases:
        if bool(violations(fam, insns)) != should_fail:
            print(f'selftest FAIL: {fam} {insns}: expected {"a" if should_fail else "no"} '
                  'violation')
            failures += 1
    print(f'selftest: {len(cases)} cases, {failures} wrong')
    return failures


def main(argv):
    if argv[1:] == ['--selftest']:
        return 1 if selftest() else 0
    if len(argv) < 3:
        print(__doc__)
        return 2
    objdump, product, rest = argv[1], argv[2], argv[3:]
    families = []
    while rest:
        if len(rest) < 2 or rest[0] not in ('--avx512', '--amx'):
            print(__doc__)
            return 2
        families.append((rest[0][2:], rest[1]))
        rest = rest[2:]
    return 1 if check(objdump, product, families) else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
