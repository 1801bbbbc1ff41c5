//! The builtins every program sees: jaq's, except that `add` and `join` — defined in jq by
//! jaq, and a third of the webhook bench's jq program — are written in Rust. Each gives what
//! the definition it replaces gives, errors included (tested against it below).

use jaq_core::load::{self, parse::Def};
use jaq_core::native::{Filter, Fun, bome, run, v};
use jaq_core::{Bind, DataT, RunPtr, ValR, ValT as _};
use jaq_json::Val;

/// `join` on arrays in Rust, anything else (objects, errors) through jaq's definition.
const DEFS: &str = r#"
def join($s): _join_array_or($s; .[] |= tostring | .[:-1][] += $s | reduce .[] as $x (""; . + $x));
"#;

/// Every definition in jq: jaq's, less those replaced here, with ours after jaq's core
/// (jaq's standard library calls `join`).
pub(super) fn defs() -> impl Iterator<Item = Def<&'static str>> {
    let ours = load::parse(DEFS, |p| p.defs()).expect("the definitions parse");
    let kept = |def: &Def<&str>| !replaced(def);
    let std = jaq_std::defs().chain(jaq_json::defs()).filter(kept);
    jaq_core::defs().filter(kept).chain(ours).chain(std)
}

/// Every builtin written in Rust: jaq's and ours.
pub(super) fn funs<D: for<'a> DataT<V<'a> = Val>>() -> impl Iterator<Item = Fun<D>> {
    jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .chain(ours().into_vec().into_iter().map(run))
}

/// jaq's definitions that ours stand in for: `add` (`reduce .[] as $x (null; . + $x)`) and
/// `join($s)`.
fn replaced(def: &Def<&str>) -> bool {
    matches!((def.name, def.args.len()), ("add", 0) | ("join", 1))
}

fn ours<D: for<'a> DataT<V<'a> = Val>>() -> Box<[Filter<RunPtr<D>>]> {
    Box::new([
        ("add", v(0), |cv| bome(add(cv.1))),
        (
            "_join_array_or",
            [Bind::Var(()), Bind::Fun(())].into(),
            |mut cv| {
                let (otherwise, ctx) = cv.0.pop_fun();
                let separator = cv.0.pop_var();
                match cv.1 {
                    Val::Arr(items) => bome(join(&items, &separator)),
                    other => otherwise.run((ctx, other)),
                }
            },
        ),
    ])
}

/// The values of an array or object added up with `+`, from null.
fn add(value: Val) -> ValR<Val> {
    value.values().try_fold(Val::Null, |sum, x| sum + x?)
}

/// The items as strings (`tostring`), with the separator added to all but the last, then
/// added up from `""`.
fn join(items: &[Val], separator: &Val) -> ValR<Val> {
    // A text separator, or null (`"a" + null` is `"a"`): the bytes joined at once.
    let between: &[u8] = match separator {
        Val::TStr(s) => s,
        Val::Null => &[],
        _ => {
            let mut sum = Val::from(String::new());
            for (i, item) in items.iter().enumerate() {
                let mut item = item.clone().into_string();
                if i + 1 < items.len() {
                    item = (item + separator.clone())?;
                }
                sum = (sum + item)?;
            }
            return Ok(sum);
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(between);
        }
        match item {
            // `tostring` keeps a string's bytes.
            Val::TStr(s) | Val::BStr(s) => out.extend_from_slice(s),
            other => {
                if let Val::TStr(s) = other.clone().into_string() {
                    out.extend_from_slice(&s);
                }
            }
        }
    }
    Ok(Val::utf8_str(out))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tokio_util::sync::CancellationToken;

    use super::super::{JqProgram, JqVars};

    /// jaq's own definitions, under other names.
    const JAQ: &str = r#"
        def add_jq: reduce .[] as $x (null; . + $x);
        def join_jq($s): .[] |= tostring | .[:-1][] += $s | reduce .[] as $x (""; . + $x);
    "#;

    fn outputs(program: &str, input: &Value) -> Vec<Value> {
        let jq = JqProgram::compile(&format!("{JAQ} {program}")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(jq.eval(input, JqVars::default(), &CancellationToken::new()))
            .unwrap()
    }

    fn same(ours: &str, theirs: &str, input: &Value) {
        let catch = |p: &str| format!("try ({p}) catch {{error: .}}");
        let (a, b) = (outputs(&catch(ours), input), outputs(&catch(theirs), input));
        assert_eq!(a, b, "`{ours}` and `{theirs}` on {input}");
    }

    #[test]
    fn add_is_jaqs() {
        let inputs = [
            json!([]),
            json!([1, 2, 3]),
            json!([1.5, 2, -0.25]),
            json!(["a", "b", ""]),
            json!([[1], [2, 3]]),
            json!([{"a": 1}, {"b": 2, "a": 3}]),
            json!([null, 1, null]),
            json!([null]),
            json!([1, "a"]),
            json!(["a", 1]),
            json!([{"a": 1}, [1]]),
            json!({"x": 1, "y": 2}),
            json!({"x": "a", "y": 2}),
            json!(null),
            json!("text"),
            json!(3),
            json!(true),
        ];
        for input in &inputs {
            same("add", "add_jq", input);
        }
        assert_eq!(outputs("add", &json!([1, 2, 3])), [json!(6)]);
    }

    #[test]
    fn join_is_jaqs() {
        let inputs = [
            json!([]),
            json!(["a"]),
            json!(["a", "b", "c"]),
            json!([1, null, true, "x", [1, "y"], {"a": 1}, 2.5]),
            json!(["ü", "", "é"]),
            json!({"a": 1, "b": "x"}),
            json!({}),
            json!(null),
            json!("abc"),
            json!(5),
            json!(false),
        ];
        let separators = [
            "\",\"",
            "\"\"",
            "\" – \"",
            "null",
            "1",
            "[]",
            "{\"x\": 1}",
            "true",
        ];
        for input in &inputs {
            for separator in separators {
                same(
                    &format!("join({separator})"),
                    &format!("join_jq({separator})"),
                    input,
                );
            }
        }
        assert_eq!(
            outputs("join(\", \")", &json!(["a", 1, null])),
            [json!("a, 1, null")]
        );
    }
}
