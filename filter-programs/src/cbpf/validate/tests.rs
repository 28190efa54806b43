use super::*;
use crate::cbpf::skf::{Ancillary, SKF_AD_OFF, SKF_LL_OFF, SKF_NET_OFF};

const RET0: Insn = Insn::new(0x06, 0, 0, 0);
const RET_A: Insn = Insn::new(0x16, 0, 0, 0);

fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn::new(code, jt, jf, k)
}

fn kernel(p: &[Insn]) -> Result<(), ValidateError> {
    validate(p, RuleSet::Kernel)
}

fn libpcap(p: &[Insn]) -> Result<(), ValidateError> {
    validate(p, RuleSet::Libpcap)
}

/// The error's full message, for exact comparisons.
fn msg(r: Result<(), ValidateError>) -> String {
    match r {
        Ok(()) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tcpdump_ip_program_passes_both() {
    let p = [
        i(0x28, 0, 0, 12),
        i(0x15, 0, 1, 0x800),
        i(0x06, 0, 0, 262_144),
        RET0,
    ];
    assert_eq!(kernel(&p), Ok(()));
    assert_eq!(libpcap(&p), Ok(()));
}

#[test]
fn empty_program() {
    for r in [kernel(&[]), libpcap(&[])] {
        assert_eq!(
            r,
            Err(ValidateError {
                index: 0,
                rule: Rule::EmptyProgram
            })
        );
        assert_eq!(
            msg(r),
            "instruction 0: empty program: a filter needs at least one instruction"
        );
    }
}

#[test]
fn length_limit_is_the_kernels_only() {
    let mut p = vec![i(0x00, 0, 0, 1); 4095];
    p.push(RET_A);
    assert_eq!(kernel(&p), Ok(()));
    p.insert(0, i(0x00, 0, 0, 1));
    assert_eq!(
        msg(kernel(&p)),
        "instruction 4097: program too long: 4097 instructions, the kernel accepts at most 4096"
    );
    assert_eq!(kernel(&p).unwrap_err().rule, Rule::TooLong { len: 4097 });
    assert_eq!(libpcap(&p), Ok(()));
}

#[test]
fn unknown_opcodes() {
    // ldh len, neg x, ja x, garbage in the high byte, an ALU op past xor.
    for code in [0x88u16, 0x8c, 0x0d, 0x106, 0xb4, 0xe0] {
        let p = [i(code, 0, 0, 0), RET0];
        assert_eq!(
            kernel(&p).unwrap_err(),
            ValidateError {
                index: 0,
                rule: Rule::UnknownOpcode { code }
            }
        );
    }
    assert_eq!(
        msg(kernel(&[RET0, i(0x106, 0, 0, 0), RET0])),
        "instruction 1: unknown opcode 0x0106: not a classic BPF instruction"
    );
    // libpcap looks at class, mode and op only.
    for code in [0x88u16, 0x8c, 0x0d, 0x106, 0x21, 0x18, 0x62] {
        assert_eq!(libpcap(&[i(code, 0, 0, 0), RET0]), Ok(()), "{code:#x}");
    }
    for code in [0xb4u16, 0xe0, 0xc1, 0x55, 0xf5] {
        assert_eq!(
            libpcap(&[i(code, 0, 0, 0), RET0]).unwrap_err().rule,
            Rule::UnknownOpcode { code },
            "{code:#x}"
        );
    }
}

#[test]
fn ret_x_is_kernel_only_trouble() {
    let p = [i(0x0e, 0, 0, 0)];
    assert_eq!(
        msg(kernel(&p)),
        "instruction 0: ret x is not supported by the kernel: return a constant or A"
    );
    assert_eq!(libpcap(&p), Ok(()));
}

#[test]
fn final_return() {
    let p = [i(0x28, 0, 0, 12)];
    for r in [kernel(&p), libpcap(&p)] {
        assert_eq!(
            msg(r),
            "instruction 0: no final return: the last instruction (code 0x0028) must be a ret"
        );
    }
    // A ret with stray rval bits is still a ret class code to libpcap.
    let odd = [i(0x1e, 0, 0, 0)];
    assert_eq!(libpcap(&odd), Ok(()));
    assert_eq!(
        kernel(&odd).unwrap_err().rule,
        Rule::UnknownOpcode { code: 0x1e }
    );
}

#[test]
fn jump_ranges() {
    // ja landing exactly on the last instruction passes; one further fails.
    let ok = [i(0x05, 0, 0, 1), RET0, RET0];
    assert_eq!(kernel(&ok), Ok(()));
    assert_eq!(libpcap(&ok), Ok(()));
    let bad = [i(0x05, 0, 0, 2), RET0, RET0];
    let expected = "instruction 0: jump out of range: the ja branch lands on instruction 3, but \
                    the last instruction is 2";
    assert_eq!(msg(kernel(&bad)), expected);
    assert_eq!(msg(libpcap(&bad)), expected);

    let jt = [i(0x15, 2, 0, 0), RET0, RET0];
    assert_eq!(
        kernel(&jt).unwrap_err().rule,
        Rule::JumpOutOfRange {
            branch: Branch::True,
            target: 3,
            len: 3
        }
    );
    let jf = [i(0x15, 0, 255, 0), RET0];
    assert_eq!(
        msg(libpcap(&jf)),
        "instruction 0: jump out of range: the jf branch lands on instruction 256, but the last \
         instruction is 1"
    );
    assert_eq!(kernel(&[i(0x15, 1, 1, 0), RET0, RET0]), Ok(()));
}

#[test]
fn libpcap_ja_wraps_around() {
    // from + k overflows 32 bits and lands on 0: libpcap lets it pass.
    let p = [i(0x05, 0, 0, u32::MAX), RET0];
    assert_eq!(libpcap(&p), Ok(()));
    assert_eq!(
        kernel(&p).unwrap_err().rule,
        Rule::JumpOutOfRange {
            branch: Branch::Always,
            target: 1 << 32,
            len: 2
        }
    );
}

#[test]
fn scratch_index() {
    for code in [0x60u16, 0x61, 0x02, 0x03] {
        let bad = [i(0x02, 0, 0, 0), i(code, 0, 0, 16), RET0];
        for r in [kernel(&bad), libpcap(&bad)] {
            assert_eq!(
                msg(r),
                "instruction 1: scratch memory index 16 out of range: M[] has 16 cells, M[0] to \
                 M[15]"
            );
        }
        let ok = [i(0x02, 0, 0, 15), i(code, 0, 0, 15), RET0];
        assert_eq!(kernel(&ok), Ok(()));
        assert_eq!(libpcap(&ok), Ok(()));
    }
}

#[test]
fn divide_by_zero() {
    for code in [0x34u16, 0x94] {
        let p = [i(code, 0, 0, 0), RET0];
        for r in [kernel(&p), libpcap(&p)] {
            assert_eq!(
                msg(r),
                "instruction 0: division by zero: div or mod by the constant 0"
            );
        }
        assert_eq!(kernel(&[i(code, 0, 0, 1), RET0]), Ok(()));
        // By X: the interpreters return 0 at run time instead.
        assert_eq!(kernel(&[i(code | 0x08, 0, 0, 0), RET0]), Ok(()));
        assert_eq!(libpcap(&[i(code | 0x08, 0, 0, 0), RET0]), Ok(()));
    }
}

#[test]
fn shift_limits() {
    for code in [0x64u16, 0x74] {
        assert_eq!(kernel(&[i(code, 0, 0, 31), RET0]), Ok(()));
        let p = [i(code, 0, 0, 32), RET0];
        assert_eq!(
            msg(kernel(&p)),
            "instruction 0: shift by 32: the kernel accepts constant shifts of 0 to 31 only"
        );
        assert_eq!(libpcap(&p), Ok(()));
        assert_eq!(kernel(&[i(code | 0x08, 0, 0, 99), RET0]), Ok(()));
    }
}

#[test]
fn ancillary_loads() {
    for a in Ancillary::ALL {
        for code in [0x20u16, 0x28, 0x30] {
            assert_eq!(kernel(&[i(code, 0, 0, a.k()), RET0]), Ok(()), "{a:?}");
        }
    }
    let unknown = SKF_AD_OFF as u32 + 64;
    let p = [i(0x20, 0, 0, unknown), RET0];
    assert_eq!(
        msg(kernel(&p)),
        "instruction 0: unknown ancillary load: offset -4032 (SKF_AD_OFF+64) names no field the \
         kernel knows"
    );
    assert_eq!(libpcap(&p), Ok(()));
    for k in [SKF_AD_OFF as u32 + 2, u32::MAX, SKF_AD_OFF as u32 + 0xfff] {
        assert_eq!(
            kernel(&[i(0x30, 0, 0, k), RET0]).unwrap_err().rule,
            Rule::UnknownAncillary { k }
        );
    }
    // Just below SKF_AD_OFF is the network-header area: checked per packet.
    for k in [
        SKF_AD_OFF as u32 - 1,
        SKF_NET_OFF as u32,
        SKF_LL_OFF as u32,
        SKF_LL_OFF as u32 - 1,
        0x8000_0000,
    ] {
        assert_eq!(kernel(&[i(0x20, 0, 0, k), RET0]), Ok(()), "{k:#x}");
    }
    // Indirect loads are never checked.
    assert_eq!(
        kernel(&[i(0x40, 0, 0, SKF_AD_OFF as u32 + 64), RET0]),
        Ok(())
    );
}

#[test]
fn uninitialized_scratch() {
    let p = [i(0x60, 0, 0, 3), RET0];
    assert_eq!(
        msg(kernel(&p)),
        "instruction 0: load of uninitialized scratch memory: M[3] is not written on every path \
         before this load"
    );
    assert_eq!(libpcap(&p), Ok(()));
    // Written on one branch only.
    let one_branch = [
        i(0x15, 0, 1, 0), // jeq #0, jt 1, jf 2
        i(0x02, 0, 0, 3), // st M[3]
        i(0x61, 0, 0, 3), // ldx M[3]
        RET0,
    ];
    assert_eq!(
        kernel(&one_branch).unwrap_err(),
        ValidateError {
            index: 2,
            rule: Rule::LoadOfUninitializedScratch { k: 3 }
        }
    );
    // Written on both branches.
    let both = [
        i(0x15, 0, 2, 0),
        i(0x02, 0, 0, 3),
        i(0x05, 0, 0, 1),
        i(0x03, 0, 0, 3),
        i(0x61, 0, 0, 3),
        RET0,
    ];
    assert_eq!(kernel(&both), Ok(()));
}

#[test]
fn scratch_analysis_is_the_kernels_linear_pass() {
    // After a ret, the kernel keeps the cells written before it.
    assert_eq!(
        kernel(&[i(0x02, 0, 0, 1), RET0, i(0x60, 0, 0, 1), RET0]),
        Ok(())
    );
    // Code after a ja that nothing jumps to counts as fully written.
    assert_eq!(kernel(&[i(0x05, 0, 0, 1), i(0x60, 0, 0, 9), RET0]), Ok(()));
    // Unreachable code after a ret is still checked.
    assert_eq!(
        kernel(&[RET0, i(0x60, 0, 0, 9), RET0]).unwrap_err().rule,
        Rule::LoadOfUninitializedScratch { k: 9 }
    );
}

#[test]
fn ja_over_too_many_converted_instructions() {
    // Each `ld [1]` becomes 14 eBPF instructions; 2341 of them need 32774.
    let mut p = vec![i(0x05, 0, 0, 2340)];
    p.extend(std::iter::repeat_n(i(0x20, 0, 0, 1), 2340));
    p.push(RET0);
    assert_eq!(kernel(&p), Ok(()), "2340 * 14 = 32760 fits");
    p[0].k = 2341;
    p.insert(1, i(0x20, 0, 0, 1));
    assert_eq!(
        msg(kernel(&p)),
        "instruction 0: jump too far: the kernel translates this ja into one over 32774 eBPF \
         instructions, more than the 32767 an eBPF jump can encode"
    );
    assert_eq!(libpcap(&p), Ok(()));
}

#[test]
fn kernel_checks_instructions_before_the_final_return() {
    // An opcode error at 1 wins over the missing return at 2.
    let p = [RET0, i(0xff, 0, 0, 0), i(0x00, 0, 0, 0)];
    assert_eq!(kernel(&p).unwrap_err().index, 1);
    assert_eq!(
        libpcap(&p).unwrap_err().index,
        2,
        "class 7 (misc) passes libpcap"
    );
}
