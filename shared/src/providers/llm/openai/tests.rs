//! The adapter against a local server speaking the public wire format.
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;

use super::super::{AssistantMessage, Llm, LlmError, LlmRequest, Message, ToolCall, ToolSpec};
use super::fake_server::{Answer, FakeServer};
use super::OpenAiLlm;

const KEY: &str = "sk-test-0123456789abcdef";

fn client(server: &FakeServer, timeout: Duration) -> OpenAiLlm {
    OpenAiLlm::new(
        &server.base_url,
        Some(SecretString::from(KEY)),
        "gpt-test",
        timeout,
    )
    .unwrap()
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Weather for a city".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }),
    }
}

#[tokio::test]
async fn a_tool_call_round_trips_in_the_wire_format() {
    let server = FakeServer::spawn(|n, _| match n {
        0 => Answer::json(
            200,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test-2024",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": null,
                    "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]
                }}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
            }),
        ),
        _ => Answer::json(
            200,
            json!({
                "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "It is 3°C in Oslo."}}]
            }),
        ),
    })
    .await;
    let llm = client(&server, Duration::from_secs(5));

    let mut request = LlmRequest {
        messages: vec![
            Message::system("You help."),
            Message::user("Weather in Oslo?"),
        ],
        tools: vec![weather_tool()],
    };
    let first = llm.chat(&request).await.unwrap();
    assert_eq!(first.model, "gpt-test-2024");
    assert_eq!(first.usage.unwrap().total_tokens(), 17);
    assert_eq!(
        first.message.tool_calls,
        vec![ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Oslo"}),
        }]
    );

    request.messages.push(Message::Assistant(first.message));
    request
        .messages
        .push(Message::tool("call_1", r#"{"celsius":3}"#));
    let second = llm.chat(&request).await.unwrap();
    assert_eq!(second.message, AssistantMessage::text("It is 3°C in Oslo."));
    assert_eq!(
        second.model, "gpt-test",
        "falls back to the configured model"
    );
    assert_eq!(second.usage, None);

    let seen = server.seen();
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    let body = &seen[0].body;
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You help."})
    );
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["required"],
        json!(["city"])
    );
    let replay = &seen[1].body["messages"];
    assert_eq!(
        replay[2],
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]})
    );
    assert_eq!(
        replay[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"celsius\":3}"})
    );
}

#[tokio::test]
async fn no_tools_means_no_tools_field() {
    let server = FakeServer::spawn(|_, _| {
        Answer::json(200, json!({"choices": [{"message": {"content": "hi"}}]}))
    })
    .await;
    let llm = OpenAiLlm::new(&server.base_url, None, "m", Duration::from_secs(5)).unwrap();
    let reply = llm
        .chat(&LlmRequest {
            messages: vec![Message::user("hello")],
            tools: vec![],
        })
        .await
        .unwrap();
    assert_eq!(reply.message.content.as_deref(), Some("hi"));
    let seen = server.seen();
    assert!(seen[0].body.get("tools").is_none());
    assert_eq!(seen[0].authorization, None, "no key, no header");
}

#[tokio::test]
async fn an_error_status_carries_the_provider_message_but_never_the_key() {
    let server = FakeServer::spawn(|_, _| {
        Answer::json(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}."),
                "type": "invalid_request_error", "code": "invalid_api_key"}}),
        )
    })
    .await;
    let err = client(&server, Duration::from_secs(5))
        .chat(&LlmRequest {
            messages: vec![Message::user("hi")],
            tools: vec![],
        })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, LlmError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        text.contains("401") && text.contains("Incorrect API key"),
        "{text}"
    );
    assert!(
        !text.contains(KEY) && !format!("{err:?}").contains(KEY),
        "{text}"
    );
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = FakeServer::spawn(|_, _| {
        Answer::json(200, json!({"choices": []})).after(Duration::from_secs(5))
    })
    .await;
    let err = client(&server, Duration::from_millis(200))
        .chat(&LlmRequest {
            messages: vec![Message::user("hi")],
            tools: vec![],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("0.2s"), "{err}");
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    let server = FakeServer::spawn(|n, _| match n {
        0 => Answer::raw(200, "{not json"),
        _ => Answer::json(200, json!({"choices": []})),
    })
    .await;
    let llm = client(&server, Duration::from_secs(5));
    let request = LlmRequest {
        messages: vec![Message::user("hi")],
        tools: vec![],
    };
    let err = llm.chat(&request).await.unwrap_err();
    assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
    assert!(err.to_string().contains("not a chat completion"), "{err}");
    let err = llm.chat(&request).await.unwrap_err();
    assert!(err.to_string().contains("no choices"), "{err}");
}

#[tokio::test]
async fn tool_arguments_that_are_not_json_are_kept_as_text() {
    let server = FakeServer::spawn(|_, _| {
        Answer::json(
            200,
            json!({"choices": [{"message": {"tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "get_weather", "arguments": "{city: Oslo"}}]}}]}),
        )
    })
    .await;
    let reply = client(&server, Duration::from_secs(5))
        .chat(&LlmRequest {
            messages: vec![Message::user("hi")],
            tools: vec![weather_tool()],
        })
        .await
        .unwrap();
    assert_eq!(reply.message.tool_calls[0].arguments, json!("{city: Oslo"));
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let err = OpenAiLlm::new(&base, None, "m", Duration::from_secs(2))
        .unwrap()
        .chat(&LlmRequest {
            messages: vec![Message::user("hi")],
            tools: vec![],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Transport(_)), "{err:?}");
}
