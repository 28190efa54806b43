//! tcpdump `-d`: libpcap's `bpf_image()`, one line per instruction.
//!
//! The printer reproduces libpcap 1.10.3 byte for byte, quirks included:
//! - operands printed with `%d` are signed (`ret #-1`, `[x + -4096]`);
//! - `ld`/`ldh`/`ldb [k]` at a Linux ancillary offset print its name
//!   (`[proto]`, `[vlanp]`, ...), with libpcap's names, not the kernel's;
//! - operand-less opcodes keep the `%-8s ` padding (`"txa      "`);
//! - `ret x` (0x0e), `ldx #pktlen` (0x81) and every non-opcode print as
//!   `unimp 0x<code>`, because 1.10.3's bpf_image has no case for them;
//! - jump targets are absolute (`n + 1 + jt`), `ja` wraps as C unsigned
//!   arithmetic does.

use super::lex::{self, Line, Tok};
use super::TextError;
use crate::cbpf::{AluOp, Insn, JmpOp, Op, RetVal, Size, Src};

/// libpcap's names for `SKF_AD_OFF + 4 * i` (bpf_image.c's `offsets[]`).
const AD_NAMES: [&str; 16] = [
    "proto",
    "type",
    "ifidx",
    "nla",
    "nlan",
    "mark",
    "queue",
    "hatype",
    "rxhash",
    "cpu",
    "xor_x",
    "vlan_tci",
    "vlanp",
    "poff",
    "random",
    "vlan_tpid",
];
const SKF_AD_OFF: u32 = 0xffff_f000;

fn ancillary_name(k: u32) -> Option<&'static str> {
    let off = k.wrapping_sub(SKF_AD_OFF);
    if !off.is_multiple_of(4) {
        return None;
    }
    AD_NAMES.get((off / 4) as usize).copied()
}

fn ancillary_k(name: &str) -> Option<u32> {
    let i = AD_NAMES.iter().position(|n| *n == name)?;
    Some(SKF_AD_OFF + 4 * i as u32)
}

fn size_prefix(size: Size) -> &'static str {
    match size {
        Size::W => "ld",
        Size::H => "ldh",
        Size::B => "ldb",
    }
}

/// Whether bpf_image prints jt/jf for this code: its test is on the class
/// and op bits alone, so it holds for unknown jump-class codes too.
pub(super) fn has_targets(code: u16) -> bool {
    code & 0x07 == 0x05 && code & 0xf0 != 0x00
}

/// Mnemonic and operand as bpf_image chooses them; `None` means `unimp`.
fn parts(insn: &Insn, n: usize) -> Option<(&'static str, String)> {
    let k = insn.k;
    let s = k as i32;
    let op = insn.decode().ok()?;
    Some(match op {
        Op::LdAbs { size, .. } => {
            let operand = match ancillary_name(k) {
                Some(name) => format!("[{name}]"),
                None => format!("[{s}]"),
            };
            (size_prefix(size), operand)
        }
        Op::LdInd { size, .. } => (size_prefix(size), format!("[x + {s}]")),
        Op::LdImm { .. } => ("ld", format!("#{k:#x}")),
        Op::LdMem { .. } => ("ld", format!("M[{s}]")),
        Op::LdLen => ("ld", "#pktlen".into()),
        Op::LdxImm { .. } => ("ldx", format!("#{k:#x}")),
        Op::LdxMem { .. } => ("ldx", format!("M[{s}]")),
        Op::LdxMsh { .. } => ("ldxb", format!("4*([{s}]&0xf)")),
        Op::St { .. } => ("st", format!("M[{s}]")),
        Op::Stx { .. } => ("stx", format!("M[{s}]")),
        Op::Alu { op, src } => {
            let operand = match src {
                Src::X => "x".into(),
                Src::K(_) if matches!(op, AluOp::And | AluOp::Or | AluOp::Xor) => {
                    format!("#{k:#x}")
                }
                Src::K(_) => format!("#{s}"),
            };
            (op.mnemonic(), operand)
        }
        Op::Neg => ("neg", String::new()),
        Op::Ja { .. } => (
            "ja",
            format!("{}", (n as u32).wrapping_add(1).wrapping_add(k) as i32),
        ),
        Op::Jmp { op, src, .. } => {
            let operand = match src {
                Src::X => "x".into(),
                Src::K(_) => format!("#{k:#x}"),
            };
            (op.mnemonic(), operand)
        }
        Op::Ret { val: RetVal::K(_) } => ("ret", format!("#{s}")),
        Op::Ret { val: RetVal::A } => ("ret", String::new()),
        Op::Tax => ("tax", String::new()),
        Op::Txa => ("txa", String::new()),
        Op::Ret { val: RetVal::X } | Op::LdxLen => return None,
    })
}

/// One line of `tcpdump -d` for instruction `n`, without the newline:
/// exactly libpcap 1.10.3's `bpf_image(insn, n)`.
pub fn image(insn: &Insn, n: usize) -> String {
    let (op, operand) = parts(insn, n).unwrap_or_else(|| ("unimp", format!("{:#x}", insn.code)));
    if has_targets(insn.code) {
        let t = n as i64 + 1 + insn.jt as i64;
        let f = n as i64 + 1 + insn.jf as i64;
        format!("({n:03}) {op:<8} {operand:<16} jt {t}\tjf {f}")
    } else {
        format!("({n:03}) {op:<8} {operand}")
    }
}

pub(super) fn print(prog: &[Insn]) -> String {
    let mut out = String::new();
    for (n, insn) in prog.iter().enumerate() {
        out.push_str(&image(insn, n));
        out.push('\n');
    }
    out
}

/// An operand as written, with whitespace already removed.
#[derive(Debug)]
enum Operand<'a> {
    None,
    Imm(u32),
    PktLen,
    Abs(u32),
    Ind(u32),
    Mem(u32),
    Msh(u32),
    X,
    A,
    /// A bare word: the `ja` target or the `unimp` code.
    Bare(&'a str),
}

fn operand(s: &str) -> Result<Operand<'_>, String> {
    let num = |inner: &str| lex::word(inner);
    if s.is_empty() {
        return Ok(Operand::None);
    }
    if s.eq_ignore_ascii_case("x") {
        return Ok(Operand::X);
    }
    if s.eq_ignore_ascii_case("a") {
        return Ok(Operand::A);
    }
    if let Some(imm) = s.strip_prefix('#') {
        return if imm == "pktlen" {
            Ok(Operand::PktLen)
        } else {
            num(imm).map(Operand::Imm)
        };
    }
    if let Some(m) = s.strip_prefix("M[").and_then(|r| r.strip_suffix(']')) {
        return num(m).map(Operand::Mem);
    }
    if let Some(m) = s
        .strip_prefix("4*([")
        .and_then(|r| r.strip_suffix("]&0xf)"))
    {
        return num(m).map(Operand::Msh);
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if let Some(off) = inner
            .strip_prefix("x+")
            .or_else(|| inner.strip_prefix("X+"))
        {
            return num(off).map(Operand::Ind);
        }
        if let Some(k) = ancillary_k(inner) {
            return Ok(Operand::Abs(k));
        }
        return num(inner).map(Operand::Abs);
    }
    Ok(Operand::Bare(s))
}

/// The operand forms each mnemonic takes, for error messages.
fn forms(mn: &str) -> Option<&'static str> {
    Some(match mn {
        "ld" => "#k, #pktlen, [k], [x + k] or M[k]",
        "ldh" | "ldb" => "[k] or [x + k]",
        "ldx" => "#k, #pktlen or M[k]",
        "ldxb" => "4*([k]&0xf)",
        "st" | "stx" => "M[k]",
        "add" | "sub" | "mul" | "div" | "mod" | "and" | "or" | "xor" | "lsh" | "rsh" => "#k or x",
        "jeq" | "jgt" | "jge" | "jset" => "#k or x",
        "neg" | "tax" | "txa" => "no operand",
        "ja" => "an instruction number",
        "ret" => "#k, nothing (A) or x",
        "unimp" => "an opcode such as 0xe",
        _ => return None,
    })
}

/// The opcode a mnemonic and operand stand for.
fn encode(mn: &str, opnd: &Operand, n: usize) -> Result<Insn, String> {
    use Operand as O;
    let alu = AluOp::ALL.into_iter().find(|a| a.mnemonic() == mn);
    let jmp = JmpOp::ALL.into_iter().find(|j| j.mnemonic() == mn);
    let size = match mn {
        "ld" => Some(Size::W),
        "ldh" => Some(Size::H),
        "ldb" => Some(Size::B),
        _ => None,
    };
    let src = match opnd {
        O::Imm(k) => Some(Src::K(*k)),
        O::X => Some(Src::X),
        _ => None,
    };
    let op = match (mn, opnd) {
        (_, O::Abs(k)) if size.is_some() => size.map(|size| Op::LdAbs { size, k: *k }),
        (_, O::Ind(k)) if size.is_some() => size.map(|size| Op::LdInd { size, k: *k }),
        ("ld", O::Imm(k)) => Some(Op::LdImm { k: *k }),
        ("ld", O::Mem(k)) => Some(Op::LdMem { k: *k }),
        ("ld", O::PktLen) => Some(Op::LdLen),
        ("ldx", O::Imm(k)) => Some(Op::LdxImm { k: *k }),
        ("ldx", O::Mem(k)) => Some(Op::LdxMem { k: *k }),
        ("ldx", O::PktLen) => Some(Op::LdxLen),
        ("ldxb", O::Msh(k)) => Some(Op::LdxMsh { k: *k }),
        ("st", O::Mem(k)) => Some(Op::St { k: *k }),
        ("stx", O::Mem(k)) => Some(Op::Stx { k: *k }),
        ("neg", O::None) => Some(Op::Neg),
        ("tax", O::None) => Some(Op::Tax),
        ("txa", O::None) => Some(Op::Txa),
        ("ret", O::Imm(k)) => Some(Op::Ret { val: RetVal::K(*k) }),
        ("ret", O::None | O::A) => Some(Op::Ret { val: RetVal::A }),
        ("ret", O::X) => Some(Op::Ret { val: RetVal::X }),
        ("ja", O::Bare(_)) => Some(Op::Ja { k: 0 }), // parse_line reads the target into k
        ("unimp", O::Bare(c)) => {
            let code = lex::unsigned(c, u16::MAX as u64)? as u16;
            let insn = Insn::new(code, 0, 0, 0);
            if let Some((name, _)) = parts(&insn, n) {
                return Err(format!(
                    "opcode {code:#x} is `{name}`; bpf_image never prints it as `unimp`"
                ));
            }
            return Ok(insn);
        }
        _ => match (alu, jmp, src) {
            (Some(op), _, Some(src)) => Some(Op::Alu { op, src }),
            (_, Some(op), Some(src)) => Some(Op::Jmp {
                op,
                src,
                jt: 0,
                jf: 0,
            }),
            _ => None,
        },
    };
    match (op, forms(mn)) {
        (Some(op), _) => Ok(Insn::from(op)),
        (None, None) => Err(format!("unknown mnemonic `{mn}`")),
        (None, Some(f)) => Err(format!("`{mn}` takes {f}")),
    }
}

/// A jump target to check once the program length is known. `ja` may go
/// backwards (k wraps around 2^32): libpcap's protochain code does, and its
/// validator accepts it; conditional jumps cannot.
pub(super) struct Target {
    pub line: usize,
    pub col: usize,
    pub target: u64,
}

/// Absolute target `tok` of instruction `n` as the relative offset.
fn relative(tok: &Tok, n: usize, max: u64) -> Result<u64, String> {
    let t = lex::unsigned(tok.text, u64::MAX >> 1)
        .map_err(|_| format!("jump target `{}` is not an instruction number", tok.text))?;
    if t <= n as u64 {
        return Err(format!(
            "jump target {t} is not after this instruction ({n:03}): jumps go forward"
        ));
    }
    let rel = t - n as u64 - 1;
    if rel > max {
        return Err(format!(
            "jump target {t} is {rel} instructions ahead; at most {max} fit"
        ));
    }
    Ok(rel)
}

/// Parses one `(NNN) op operand [jt T jf F] [; comment]` line.
fn parse_line(line: &Line, n: usize, targets: &mut Vec<Target>) -> Result<Insn, TextError> {
    let at = |col: usize, m: String| lex::err(line.no, col, m);
    let (body, comment) = match line.text.find(';') {
        Some(p) => (&line.text[..p], Some(p)),
        None => (line.text, None),
    };
    let toks = lex::tokens(line.text, 0, body);
    let first = toks.first().map_or(1, |t| t.col);
    let idx = toks
        .first()
        .and_then(|t| t.text.strip_prefix('(')?.strip_suffix(')'))
        .ok_or_else(|| at(first, format!("expected the instruction number `({n:03})`")))?;
    match lex::unsigned(idx, u64::MAX) {
        Ok(i) if i == n as u64 => {}
        _ => {
            return Err(at(
                first,
                format!("expected instruction number ({n:03}), found `({idx})`"),
            ))
        }
    }
    let Some(mn) = toks.get(1) else {
        return Err(at(first, format!("instruction ({n:03}) has no mnemonic")));
    };
    let rest = &toks[2..];
    let jt_at = rest.iter().position(|t| t.text == "jt");
    let (opnd_toks, jumps) = match jt_at {
        Some(p) => (&rest[..p], Some(&rest[p..])),
        None => (rest, None),
    };
    let opnd_col = opnd_toks.first().map_or(mn.col, |t| t.col);
    let opnd_text: String = opnd_toks.iter().map(|t| t.text).collect();
    let opnd = operand(&opnd_text).map_err(|m| at(opnd_col, m))?;
    let mut insn = encode(mn.text, &opnd, n).map_err(|m| {
        let col = if m.starts_with("unknown mnemonic") {
            mn.col
        } else {
            opnd_col
        };
        at(col, m)
    })?;
    if let (Operand::Bare(t), "ja") = (opnd, mn.text) {
        // Printed as `%d` of the unsigned sum n + 1 + k, so a negative
        // number is a target past 2^31 and never inside the program.
        let digits = t.strip_prefix('-').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(at(
                opnd_col,
                format!("jump target `{t}` is not an instruction number"),
            ));
        }
        let Ok(target) = t.parse::<u32>() else {
            return Err(at(
                opnd_col,
                format!("jump target {t} is outside the program"),
            ));
        };
        insn.k = target.wrapping_sub(n as u32).wrapping_sub(1);
        targets.push(Target {
            line: line.no,
            col: opnd_col,
            target: target as u64,
        });
    }
    match (has_targets(insn.code), jumps) {
        (true, Some([jt, t, jf, f])) if jt.text == "jt" && jf.text == "jf" => {
            insn.jt = relative(t, n, 255).map_err(|m| at(t.col, m))? as u8;
            insn.jf = relative(f, n, 255).map_err(|m| at(f.col, m))? as u8;
            for (tok, rel) in [(t, insn.jt), (f, insn.jf)] {
                let target = n as u64 + 1 + rel as u64;
                targets.push(Target {
                    line: line.no,
                    col: tok.col,
                    target,
                });
            }
        }
        (true, Some(j)) => {
            let col = j.first().map_or(mn.col, |t| t.col);
            return Err(at(col, "expected `jt <target> jf <target>`".into()));
        }
        (true, None) => {
            let col = toks
                .last()
                .map_or(mn.col, |t| t.col + t.text.chars().count());
            return Err(at(
                col,
                format!("`{}` needs `jt <target> jf <target>`", mn.text),
            ));
        }
        (false, Some(j)) => {
            let col = j.first().map_or(mn.col, |t| t.col);
            return Err(at(col, format!("`{}` takes no `jt`/`jf`", mn.text)));
        }
        (false, None) => {}
    }
    if let Some(p) = comment {
        check_comment(line, p, &insn)?;
    }
    Ok(insn)
}

/// libpcap master's filtertest appends `; 0x<code>`; when it is there it
/// must agree with the mnemonic. Any other comment is ignored.
fn check_comment(line: &Line, semi: usize, insn: &Insn) -> Result<(), TextError> {
    let text = &line.text[semi + 1..];
    let toks = lex::tokens(line.text, semi + 1, text);
    if let [tok] = toks.as_slice() {
        if tok.text.starts_with("0x") {
            match lex::unsigned(tok.text, u16::MAX as u64) {
                Ok(c) if c == insn.code as u64 => {}
                Ok(c) => {
                    return Err(lex::err(
                        line.no,
                        tok.col,
                        format!(
                            "comment says opcode {c:#06x} but the instruction is {:#06x}",
                            insn.code
                        ),
                    ))
                }
                Err(m) => return Err(lex::err(line.no, tok.col, m)),
            }
        }
    }
    Ok(())
}

pub(super) fn parse(lines: &[Line]) -> Result<(Vec<Insn>, Vec<Target>), TextError> {
    let mut targets = Vec::new();
    let mut prog = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        prog.push(parse_line(line, n, &mut targets)?);
    }
    Ok((prog, targets))
}
