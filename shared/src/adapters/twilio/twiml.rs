//! TwiML answers to Twilio's inbound-message webhook (`Content-Type: text/xml`): the empty
//! `<Response/>` (nothing to say now; replies go out later through the send pipeline) and one
//! `<Message>` for HELP when Twilio is not answering it itself.

/// The TwiML content type.
pub const CONTENT_TYPE: &str = "text/xml";

/// An answer that sends nothing.
pub const EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

/// An answer that replies `text` to the sender.
#[must_use]
pub fn message(text: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>"#,
        escape(text)
    )
}

/// XML text escaping (`&`, `<`, `>`, quotes); control characters XML 1.0 forbids are dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_help_text_is_escaped_into_one_message() {
        assert_eq!(
            message("Acme <help> & \"info\": reply STOP\u{0007}"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Acme &lt;help&gt; &amp; &quot;info&quot;: reply STOP</Message></Response>"#
        );
    }

    #[test]
    fn the_empty_answer_is_a_bare_response() {
        assert!(EMPTY.ends_with("<Response/>"));
    }
}
