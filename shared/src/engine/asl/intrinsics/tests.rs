use super::*;
use serde_json::json;

fn eval(text: &str, input: Value) -> Result<Value, StatesError> {
    let ctx = ContextObject::fixed(json!({"Execution": {"Name": "run-1"}}));
    Call::parse(text).unwrap().eval(&input, &ctx)
}

fn ok(text: &str, input: Value) -> Value {
    eval(text, input).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn failure(text: &str, input: Value) -> StatesError {
    eval(text, input).expect_err(text)
}

#[test]
fn format_and_escapes() {
    let input = json!({"name": "Arnav", "template": "Hello, my name is {}."});
    assert_eq!(
        ok(
            "States.Format('Hello, my name is {}.', $.name)",
            input.clone()
        ),
        json!("Hello, my name is Arnav.")
    );
    assert_eq!(
        ok("States.Format($.template, $.name)", input.clone()),
        json!("Hello, my name is Arnav.")
    );
    assert_eq!(
        ok(r"States.Format('\{\} {} it\'s \\', 1)", json!({})),
        json!(r"{} 1 it's \")
    );
    assert_eq!(
        ok(
            "States.Format('{}|{}|{}|{}|{}', 1.5, true, null, $.o, $.a)",
            json!({"o": {"k": "v", "n": 1}, "a": [1, "x"]})
        ),
        json!("1.5|true|null|{k=v, n=1}|[1, x]")
    );
    assert_eq!(
        ok("States.Format('{}', $$.Execution.Name)", json!({})),
        json!("run-1")
    );
    assert_eq!(
        failure("States.Format('{} {}', 1)", json!({})).name(),
        Some("States.IntrinsicFailure")
    );
    assert_eq!(
        failure("States.Format('{}', 1, 2)", json!({})).name(),
        Some("States.IntrinsicFailure")
    );
}

#[test]
fn json_functions() {
    assert_eq!(
        ok(
            "States.StringToJson($.s)",
            json!({"s": "{\"foo\": \"bar\"}"})
        ),
        json!({"foo": "bar"})
    );
    assert_eq!(
        ok("States.JsonToString($.o)", json!({"o": {"foo": "bar"}})),
        json!("{\"foo\":\"bar\"}")
    );
    assert!(failure("States.StringToJson('{nope')", json!({}))
        .cause
        .unwrap()
        .contains("StringToJson"));
    assert_eq!(
        ok(
            "States.JsonMerge($.a, $.b, false)",
            json!({"a": {"x": {"a1": 1}, "b": 2}, "b": {"x": {"a3": 1}, "c": 3}})
        ),
        json!({"x": {"a3": 1}, "b": 2, "c": 3})
    );
    assert_eq!(
        failure("States.JsonMerge($.a, $.a, true)", json!({"a": {}})).name(),
        Some("States.IntrinsicFailure")
    );
    assert_eq!(
        failure("States.JsonMerge($.a, 1, false)", json!({"a": {}})).name(),
        Some("States.IntrinsicFailure")
    );
}

#[test]
fn array_functions() {
    assert_eq!(
        ok(
            "States.Array($.id, 'a', 2, States.Array())",
            json!({"id": 7})
        ),
        json!([7, "a", 2, []])
    );
    assert_eq!(
        ok(
            "States.ArrayPartition($.a, 2)",
            json!({"a": [1, 2, 3, 4, 5]})
        ),
        json!([[1, 2], [3, 4], [5]])
    );
    assert_eq!(
        ok("States.ArrayContains($.a, 3)", json!({"a": [1, 2, 3]})),
        json!(true)
    );
    assert_eq!(
        ok("States.ArrayContains($.a, 'x')", json!({"a": [1, 2, 3]})),
        json!(false)
    );
    assert_eq!(
        ok("States.ArrayRange(1, 9, 2)", json!({})),
        json!([1, 3, 5, 7, 9])
    );
    assert_eq!(
        ok("States.ArrayRange(5, 1, -2)", json!({})),
        json!([5, 3, 1])
    );
    assert_eq!(
        ok(
            "States.ArrayLength(States.ArrayRange(1, 1000, 1))",
            json!({})
        ),
        json!(1000)
    );
    assert!(eval("States.ArrayRange(0, 1000, 1)", json!({})).is_err());
    assert!(eval("States.ArrayRange(0, 3, 0)", json!({})).is_err());
    assert_eq!(
        ok("States.ArrayGetItem($.a, 1)", json!({"a": ["x", "y"]})),
        json!("y")
    );
    assert!(eval("States.ArrayGetItem($.a, 2)", json!({"a": ["x", "y"]})).is_err());
    assert_eq!(
        ok("States.ArrayLength($.a)", json!({"a": [1, 2]})),
        json!(2)
    );
    assert_eq!(
        ok(
            "States.ArrayUnique($.a)",
            json!({"a": [1, 2, 1, "x", "x", {"k": 1}, {"k": 1}]})
        ),
        json!([1, 2, "x", {"k": 1}])
    );
    assert!(eval("States.ArrayLength($.a)", json!({"a": "no"})).is_err());
}

#[test]
fn encoding_and_hashing() {
    assert_eq!(
        ok("States.Base64Encode('Data to encode')", json!({})),
        json!("RGF0YSB0byBlbmNvZGU=")
    );
    assert_eq!(
        ok("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", json!({})),
        json!("Data to encode")
    );
    assert!(eval("States.Base64Decode('***')", json!({})).is_err());
    assert!(eval("States.Base64Encode($.s)", json!({"s": "x".repeat(10_001)})).is_err());
    assert_eq!(
        ok("States.Hash('input', 'MD5')", json!({})),
        json!("a43c1b0aa53a0c908810c06ab1ff3967")
    );
    assert_eq!(
        ok("States.Hash('input', 'SHA-1')", json!({})),
        json!("140f86aae51ab9e1cda9b4254fe98a74eb54c1a1")
    );
    assert_eq!(
        ok("States.Hash('input', 'SHA-256')", json!({})),
        json!("c96c6d5be8d08a12e7b5cdc1b207fa6b2430974c86803d8891675e76fd992c20")
    );
    assert_eq!(
        ok("States.Hash('input', 'SHA-384')", json!({}))
            .as_str()
            .unwrap()
            .len(),
        96
    );
    assert_eq!(
        ok("States.Hash('input', 'SHA-512')", json!({}))
            .as_str()
            .unwrap()
            .len(),
        128
    );
    assert!(eval("States.Hash('input', 'CRC32')", json!({})).is_err());
}

#[test]
fn math_string_and_uuid() {
    assert_eq!(
        ok("States.MathAdd($.v, $.step)", json!({"v": 111, "step": -1})),
        json!(110)
    );
    assert_eq!(ok("States.MathAdd(1.5, 1)", json!({})), json!(3));
    for _ in 0..20 {
        let n = ok("States.MathRandom(1, 10)", json!({})).as_i64().unwrap();
        assert!((1..10).contains(&n));
    }
    assert_eq!(
        ok("States.MathRandom(1, 1000, 42)", json!({})),
        ok("States.MathRandom(1, 1000, 42)", json!({}))
    );
    assert!(eval("States.MathRandom(5, 5)", json!({})).is_err());
    assert_eq!(
        ok(
            "States.StringSplit($.s, $.d)",
            json!({"s": "This.is+a,test=string", "d": ".+,="})
        ),
        json!(["This", "is", "a", "test", "string"])
    );
    assert_eq!(
        ok("States.StringSplit('1,2,,3', ',')", json!({})),
        json!(["1", "2", "3"])
    );
    let id = ok("States.UUID()", json!({}));
    assert!(uuid::Uuid::parse_str(id.as_str().unwrap()).is_ok());
}

#[test]
fn nested_calls_and_path_arguments() {
    let input =
        json!({"arn": "arn:aws:imagebuilder:us-east-1:123:image-recipe/my-recipe.name/1.0.0"});
    assert_eq!(
        ok("States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.arn, '/'), 1), '.'), 0), States.ArrayGetItem(States.StringSplit($.arn, '/'), 2))", input),
        json!("my-recipe.1.0.0")
    );
    assert_eq!(
        ok(
            "States.ArrayLength($.a[?(@.x > 1)])",
            json!({"a": [{"x": 1}, {"x": 2}, {"x": 3}]})
        ),
        json!(2)
    );
    assert_eq!(ok("States.Array($['a,b'])", json!({"a,b": 1})), json!([1]));
    let missing = failure("States.Array($.nope)", json!({}));
    assert_eq!(missing.name(), Some("States.Runtime"));
}

#[test]
fn syntax_errors() {
    for bad in [
        "States.Nope()",
        "States.Format(",
        "States.Format(1)",
        "States.UUID(1)",
        "States.MathAdd(1)",
        "States.Array('unterminated)",
        r"States.Array('bad \n escape')",
        "States.Array(foo)",
        "States.Array(1) trailing",
        "States.Array($.a[)",
    ] {
        assert!(Call::parse(bad).is_err(), "{bad} should not parse");
    }
    let deep = format!("{}1{}", "States.Array(".repeat(11), ")".repeat(11));
    assert!(Call::parse(&deep).is_err());
    let ok_depth = format!("{}1{}", "States.Array(".repeat(10), ")".repeat(10));
    assert!(Call::parse(&ok_depth).is_ok());
    assert_eq!(
        Call::parse("States.Format('a {}', $.x, States.UUID())")
            .map(|c| c.to_string())
            .ok(),
        Some("States.Format('a {}', $.x, States.UUID())".to_owned())
    );
}
