//! Bottom-up walks of the tree with the pending nodes on an explicit stack.
//! A tree may be as deep as its longest `and`/`or` or arithmetic chain
//! (100,000 terms are a valid filter) and nest `not`s, parentheses and
//! packet-field indexes as deep as libpcap's parser allows (about 10,000
//! levels), so nothing that walks it may recurse per level.

use super::ast::{Arith, ArithKind, ArithOp, Expr, ExprKind};

/// A node of a boolean expression with its children's results.
pub enum Fold<R> {
    /// Not `and`, `or` or `not`: a primitive or relation.
    Leaf,
    Not(R),
    And(R, R),
    Or(R, R),
}

/// A node of an arithmetic expression with its children's results.
pub enum ArithFold<R> {
    /// A number or `len`.
    Leaf,
    Neg(R),
    /// A packet field, with its index's result.
    Load(R),
    Binary(ArithOp, R, R),
}

impl Expr {
    /// Calls `f` on every node in post-order (left operand, right
    /// operand, node: source order), passing the results of its children,
    /// and returns the root's result or `f`'s first error.
    pub fn fold<R, E>(&self, mut f: impl FnMut(&Expr, Fold<R>) -> Result<R, E>) -> Result<R, E> {
        let mut work = vec![(self, false)];
        let mut done: Vec<R> = Vec::new();
        while let Some((e, children_done)) = work.pop() {
            match (&e.kind, children_done) {
                (ExprKind::And(a, b) | ExprKind::Or(a, b), false) => {
                    work.extend([(e, true), (&**b, false), (&**a, false)]);
                }
                (ExprKind::Not(a), false) => work.extend([(e, true), (&**a, false)]),
                (kind, _) => {
                    let node = match kind {
                        ExprKind::Not(_) => Fold::Not(pop(&mut done)),
                        ExprKind::And(..) => {
                            let (a, b) = pop2(&mut done);
                            Fold::And(a, b)
                        }
                        ExprKind::Or(..) => {
                            let (a, b) = pop2(&mut done);
                            Fold::Or(a, b)
                        }
                        _ => Fold::Leaf,
                    };
                    done.push(f(e, node)?);
                }
            }
        }
        Ok(pop(&mut done))
    }
}

impl Arith {
    /// As [`Expr::fold`]: left operand, right operand, operation, which
    /// is the order libpcap evaluates in.
    pub fn fold<R, E>(
        &self,
        mut f: impl FnMut(&Arith, ArithFold<R>) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut work = vec![(self, false)];
        let mut done: Vec<R> = Vec::new();
        while let Some((a, children_done)) = work.pop() {
            match (&a.kind, children_done) {
                (ArithKind::Binary { lhs, rhs, .. }, false) => {
                    work.extend([(a, true), (&**rhs, false), (&**lhs, false)]);
                }
                (ArithKind::Neg(x) | ArithKind::Load { index: x, .. }, false) => {
                    work.extend([(a, true), (&**x, false)]);
                }
                (kind, _) => {
                    let node = match kind {
                        ArithKind::Neg(_) => ArithFold::Neg(pop(&mut done)),
                        ArithKind::Load { .. } => ArithFold::Load(pop(&mut done)),
                        ArithKind::Binary { op, .. } => {
                            let (l, r) = pop2(&mut done);
                            ArithFold::Binary(*op, l, r)
                        }
                        _ => ArithFold::Leaf,
                    };
                    done.push(f(a, node)?);
                }
            }
        }
        Ok(pop(&mut done))
    }
}

// Every node pushes one result after popping its children's, so these
// pops cannot find the stack empty.
fn pop<R>(done: &mut Vec<R>) -> R {
    done.pop().expect("a result for every child")
}

fn pop2<R>(done: &mut Vec<R>) -> (R, R) {
    let b = pop(done);
    (pop(done), b)
}
