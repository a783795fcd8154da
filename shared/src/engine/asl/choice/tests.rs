use super::*;
use serde_json::json;

fn rules(v: Value) -> Vec<ChoiceRule> {
    let mut errors = Vec::new();
    let rules = parse_choices(Some(&v), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    rules
}

fn pick(choices: Value, input: Value) -> Result<String, StatesError> {
    let rules = rules(choices);
    let ctx = ContextObject::fixed(json!({"State": {"Name": "C"}}));
    choose(&rules, Some("Default"), &input, &ctx).map(str::to_owned)
}

fn matches(rule: Value, input: Value) -> bool {
    let mut rule = rule;
    rule["Next"] = json!("Yes");
    match pick(json!([rule]), input).unwrap().as_str() {
        "Yes" => true,
        "Default" => false,
        other => panic!("{other}"),
    }
}

#[test]
fn string_operators() {
    let input = json!({"s": "banana", "t": "cherry"});
    assert!(matches(
        json!({"Variable": "$.s", "StringEquals": "banana"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "StringLessThan": "cherry"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "StringGreaterThan": "apple"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "StringLessThanEquals": "banana"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "StringGreaterThanEquals": "banana"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "StringEqualsPath": "$.s"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "StringLessThanPath": "$.t"}),
        input.clone()
    ));
    assert!(!matches(
        json!({"Variable": "$.s", "StringGreaterThanPath": "$.t"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "StringLessThanEqualsPath": "$.t"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "StringGreaterThanEqualsPath": "$.s"}),
        input.clone()
    ));
    assert!(!matches(
        json!({"Variable": "$.n", "StringEquals": "1"}),
        json!({"n": 1})
    ));
}

#[test]
fn string_matches_wildcards() {
    let m = |pattern: &str, s: &str| {
        matches(
            json!({"Variable": "$.s", "StringMatches": pattern}),
            json!({"s": s}),
        )
    };
    assert!(m("log-*.txt", "log-2024.txt"));
    assert!(m("*", ""));
    assert!(m("a*b*c", "aXXbYYc"));
    assert!(!m("a*b*c", "aXXbYY"));
    assert!(m(r"star\*", "star*"));
    assert!(!m(r"star\*", "starX"));
    assert!(m(r"back\\slash", r"back\slash"));
    assert!(!m("exact", "exactly"));
}

#[test]
fn numeric_boolean_timestamp_operators() {
    let input = json!({"n": 5, "m": 7.5, "b": true, "t": "2024-01-01T00:00:00Z", "u": "2024-06-01T00:00:00+02:00"});
    assert!(matches(
        json!({"Variable": "$.n", "NumericEquals": 5.0}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "NumericLessThan": 6}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "NumericGreaterThan": 4.5}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "NumericLessThanEquals": 5}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "NumericGreaterThanEquals": 5}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "NumericLessThanPath": "$.m"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.m", "NumericGreaterThanPath": "$.n"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "NumericEqualsPath": "$.n"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "NumericLessThanEqualsPath": "$.m"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.m", "NumericGreaterThanEqualsPath": "$.n"}),
        input.clone()
    ));
    assert!(!matches(
        json!({"Variable": "$.b", "NumericEquals": 1}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.b", "BooleanEquals": true}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.b", "BooleanEqualsPath": "$.b"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "TimestampEquals": "2024-01-01T01:00:00+01:00"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "TimestampLessThan": "2024-01-02T00:00:00Z"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "TimestampGreaterThan": "2023-01-02T00:00:00Z"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "TimestampLessThanEquals": "2024-01-01T00:00:00Z"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "TimestampGreaterThanEquals": "2024-01-01T00:00:00Z"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "TimestampLessThanPath": "$.u"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.u", "TimestampGreaterThanPath": "$.t"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "TimestampEqualsPath": "$.t"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "TimestampLessThanEqualsPath": "$.u"}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.u", "TimestampGreaterThanEqualsPath": "$.t"}),
        input.clone()
    ));
    assert!(!matches(
        json!({"Variable": "$.n", "TimestampEquals": "2024-01-01T00:00:00Z"}),
        input
    ));
}

#[test]
fn type_tests() {
    let input = json!({"z": null, "n": 1, "s": "x", "b": false, "t": "2024-01-01T00:00:00Z"});
    assert!(matches(
        json!({"Variable": "$.z", "IsNull": true}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "IsNull": false}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.n", "IsNumeric": true}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "IsString": true}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.b", "IsBoolean": true}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.t", "IsTimestamp": true}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.s", "IsTimestamp": false}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.nope", "IsPresent": false}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$.z", "IsPresent": true}),
        input.clone()
    ));
    assert!(matches(
        json!({"Variable": "$$.State.Name", "StringEquals": "C"}),
        input
    ));
}

#[test]
fn boolean_combinators() {
    let input = json!({"n": 5, "s": "x"});
    assert!(matches(
        json!({"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Variable": "$.s", "StringEquals": "x"}]}),
        input.clone()
    ));
    assert!(!matches(
        json!({"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Variable": "$.s", "StringEquals": "y"}]}),
        input.clone()
    ));
    assert!(matches(
        json!({"Or": [{"Variable": "$.n", "NumericEquals": 4}, {"Variable": "$.s", "StringEquals": "x"}]}),
        input.clone()
    ));
    assert!(matches(
        json!({"Not": {"Variable": "$.n", "NumericEquals": 4}}),
        input.clone()
    ));
    assert!(matches(
        json!({"Not": {"Or": [{"Variable": "$.n", "NumericEquals": 4}, {"And": [{"Variable": "$.s", "IsString": true}, {"Variable": "$.s", "StringEquals": "z"}]}]}}),
        input.clone()
    ));
    // Short-circuit: the absent variable in the second operand is never read.
    assert!(matches(
        json!({"Or": [{"Variable": "$.n", "NumericEquals": 5}, {"Variable": "$.nope", "NumericEquals": 1}]}),
        input
    ));
}

#[test]
fn first_match_wins_and_default_and_errors() {
    let choices = json!([
        {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "A"},
        {"Variable": "$.n", "NumericGreaterThan": 0, "Next": "B"}
    ]);
    assert_eq!(pick(choices.clone(), json!({"n": 2})).unwrap(), "A");
    assert_eq!(pick(choices.clone(), json!({"n": 1})).unwrap(), "B");
    assert_eq!(pick(choices.clone(), json!({"n": 0})).unwrap(), "Default");
    let err = pick(choices.clone(), json!({})).unwrap_err();
    assert_eq!(err.name(), Some("States.Runtime"));
    assert!(err.cause.unwrap().contains("Invalid path '$.n'"));
    let err = pick(
        json!([{"Variable": "$.n", "NumericEqualsPath": "$.m", "Next": "A"}]),
        json!({"n": 1}),
    )
    .unwrap_err();
    assert_eq!(err.name(), Some("States.Runtime"));
    let ctx = ContextObject::fixed(Value::Null);
    let err = choose(&rules(choices), None, &json!({"n": 0}), &ctx).unwrap_err();
    assert_eq!(err.name(), Some("States.NoChoiceMatched"));
}

#[test]
fn parse_errors_are_collected() {
    let mut errors = Vec::new();
    parse_choices(
        Some(&json!([
            {"Variable": "$.a", "Next": "X"},
            {"Variable": "$.a", "StringEquals": 1, "Next": "X"},
            {"Variable": "$.a", "StringEquals": "x"},
            {"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1, "Next": "X"},
            {"And": [{"Variable": "$.a", "IsNull": true, "Next": "Y"}], "Next": "X"},
            {"Variable": "bad", "IsNull": true, "Next": "X"},
            {"Variable": "$.t", "TimestampEquals": "2024-01-01", "Next": "X"},
            {"Variable": "$.t", "StringMatchesPath": "$.x", "Next": "X"},
            {"Not": {"Variable": "$.a", "IsNull": "yes"}, "Next": "X"},
            {"Or": [], "Next": "X"}
        ])),
        &mut errors,
    );
    let joined = errors.join("\n");
    for expected in [
        "Choices[0]: the rule has no comparison operator",
        "Choices[1].StringEquals: must be a string",
        "Choices[2]: Next is missing",
        "Choices[3]: the rule has more than one comparison operator",
        "Choices[4].And[0]: Next is only allowed on top-level choice rules",
        "Choices[5].Variable: invalid JSONPath",
        "Choices[6].TimestampEquals: must be an RFC 3339 timestamp",
        "Choices[7]: unknown field \"StringMatchesPath\"",
        "Choices[8].Not.IsNull: must be true or false",
        "Choices[9].Or: must be a non-empty array of rules",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
    let mut errors = Vec::new();
    parse_choices(Some(&json!([])), &mut errors);
    assert_eq!(errors, ["Choices must not be empty"]);
}
