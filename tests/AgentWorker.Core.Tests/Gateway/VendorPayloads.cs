using System.Text;

namespace AgentWorker.Core.Tests.Gateway;

/// <summary>Response bodies shaped as the vendors send them (trimmed of nothing that matters to usage).</summary>
internal static class VendorPayloads
{
    public static byte[] OpenAiChatJson => Encoding.UTF8.GetBytes("""
        {
          "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
          "object": "chat.completion",
          "created": 1741570283,
          "model": "gpt-4o-2024-08-06",
          "choices": [
            {
              "index": 0,
              "message": {
                "role": "assistant",
                "content": "The usage field says {\"prompt_tokens\": 999999} but this is only text.",
                "refusal": null,
                "annotations": []
              },
              "logprobs": null,
              "finish_reason": "stop"
            }
          ],
          "usage": {
            "prompt_tokens": 1117,
            "completion_tokens": 46,
            "total_tokens": 1163,
            "prompt_tokens_details": { "cached_tokens": 1024, "audio_tokens": 0 },
            "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0 }
          },
          "service_tier": "default",
          "system_fingerprint": "fp_fc9f1d7035"
        }
        """);

    /// <summary>A chat completions stream with <c>stream_options.include_usage</c>: usage null in every chunk but the last.</summary>
    public static byte[] OpenAiChatStream(string newline) => Sse(newline,
        """data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}""",
        "",
        """data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"\"usage\": {\"completion_tokens\": 777}"},"logprobs":null,"finish_reason":null}],"usage":null}""",
        "",
        ": keep-alive",
        "",
        """data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}""",
        "",
        """data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":2006,"completion_tokens":12,"total_tokens":2018,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}""",
        "",
        "data: [DONE]",
        "");

    /// <summary>The same stream when the client did not ask for usage.</summary>
    public static byte[] OpenAiChatStreamWithoutUsage => Sse("\n",
        """data: {"id":"chatcmpl-124","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":null}]}""",
        "",
        """data: {"id":"chatcmpl-124","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}""",
        "",
        "data: [DONE]",
        "");

    public static byte[] OpenAiResponsesJson => Encoding.UTF8.GetBytes("""
        {
          "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
          "object": "response",
          "created_at": 1741476777,
          "status": "completed",
          "error": null,
          "incomplete_details": null,
          "instructions": null,
          "max_output_tokens": null,
          "model": "gpt-4.1-2025-04-14",
          "output": [
            {
              "type": "message",
              "id": "msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41",
              "status": "completed",
              "role": "assistant",
              "content": [{ "type": "output_text", "text": "A wooden boardwalk through tall grass.", "annotations": [] }]
            }
          ],
          "parallel_tool_calls": true,
          "previous_response_id": null,
          "reasoning": { "effort": null, "summary": null },
          "store": true,
          "temperature": 1.0,
          "text": { "format": { "type": "text" } },
          "tool_choice": "auto",
          "tools": [],
          "top_p": 1.0,
          "truncation": "disabled",
          "usage": {
            "input_tokens": 328,
            "input_tokens_details": { "cached_tokens": 256 },
            "output_tokens": 52,
            "output_tokens_details": { "reasoning_tokens": 0 },
            "total_tokens": 380
          },
          "user": null,
          "metadata": {}
        }
        """);

    /// <summary>A Responses API stream: usage null until <c>response.completed</c>.</summary>
    public static byte[] OpenAiResponsesStream => Sse("\n",
        "event: response.created",
        """data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"in_progress","model":"gpt-4.1-2025-04-14","output":[],"usage":null}}""",
        "",
        "event: response.in_progress",
        """data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"in_progress","model":"gpt-4.1-2025-04-14","output":[],"usage":null}}""",
        "",
        "event: response.output_text.delta",
        """data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi there"}""",
        "",
        "event: response.output_text.done",
        """data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Hi there"}""",
        "",
        "event: response.completed",
        """data: {"type":"response.completed","sequence_number":8,"response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"completed","model":"gpt-4.1-2025-04-14","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi there","annotations":[]}]}],"usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":0},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48}}}""",
        "");

    public static byte[] AnthropicJson => Encoding.UTF8.GetBytes("""
        {
          "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
          "type": "message",
          "role": "assistant",
          "model": "claude-sonnet-4-20250514",
          "content": [{ "type": "text", "text": "Hello!" }],
          "stop_reason": "end_turn",
          "stop_sequence": null,
          "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 2000,
            "cache_creation": { "ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 0 },
            "output_tokens": 6,
            "service_tier": "standard"
          }
        }
        """);

    /// <summary>
    /// A messages stream: input and cache counts in <c>message_start</c> (with a provisional output_tokens of 1), the
    /// cumulative output_tokens in <c>message_delta</c>.
    /// </summary>
    public static byte[] AnthropicStream(string newline) => Sse(newline,
        "event: message_start",
        """data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":1500,"cache_read_input_tokens":3000,"output_tokens":1}}}""",
        "",
        "event: content_block_start",
        """data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}""",
        "",
        "event: ping",
        """data: {"type": "ping"}""",
        "",
        "event: content_block_delta",
        """data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}""",
        "",
        "event: content_block_delta",
        """data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"! {\"usage\":{\"output_tokens\":5000}}"}}""",
        "",
        "event: content_block_stop",
        """data: {"type":"content_block_stop","index":0}""",
        "",
        "event: message_delta",
        """data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}""",
        "",
        "event: message_stop",
        """data: {"type":"message_stop"}""",
        "");

    public static byte[] OpenAiError => Encoding.UTF8.GetBytes("""
        {"error":{"message":"Incorrect API key provided: sk-proj-****","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}
        """);

    public static byte[] AnthropicErrorStream => Sse("\n",
        "event: error",
        """data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""",
        "");

    /// <summary>Server-sent event lines, each ended with <paramref name="newline"/>.</summary>
    public static byte[] Sse(string newline, params string[] lines) =>
        Encoding.UTF8.GetBytes(string.Concat(lines.Select(line => line + newline)));
}
