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

/// XML text escaping (`&`, `<`, `>`, quotes); characters XML 1.0 forbids (the control characters
/// other than tab and line breaks, and U+FFFE/U+FFFF) are dropped: one would make Twilio refuse
/// the whole document.
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
            c if c < ' ' || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_help_text_is_escaped_into_one_message() {
        assert_eq!(
            message("Acme <help> & \"info\": reply STOP\u{0007}"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Acme &lt;help&gt; &amp; &quot;info&quot;: reply STOP</Message></Response>"#
        );
    }

    #[test]
    fn the_two_noncharacters_xml_forbids_are_dropped() {
        // Found by `any_text_becomes_one_well_formed_message_that_reads_back`: U+FFFE and U+FFFF
        // are not XML 1.0 characters but were written as they were.
        assert_eq!(
            message("a\u{FFFE}b\u{FFFF}c\u{FFFD}"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>abc\u{FFFD}</Message></Response>"
        );
    }

    #[test]
    fn the_empty_answer_is_a_bare_response() {
        assert!(EMPTY.ends_with("<Response/>"));
    }

    /// XML 1.0 `Char`: tab, line feed, carriage return, and U+0020 to U+10FFFF except U+FFFE/U+FFFF
    /// (surrogates cannot occur in a `str`).
    fn is_xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }

    proptest! {
        #[test]
        fn any_text_becomes_one_well_formed_message_that_reads_back(text in prop_oneof![
            any::<String>(),
            "[a-z<>&\"' \u{7}\u{0}\u{FFFE}\u{FFFF}\u{FFFD}]{0,40}",
        ]) {
            let xml = message(&text);
            let prefix = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>"#;
            let suffix = "</Message></Response>";
            prop_assert!(xml.starts_with(prefix) && xml.ends_with(suffix));
            let inner = &xml[prefix.len()..xml.len() - suffix.len()];
            prop_assert!(inner.chars().all(is_xml_char), "{:?} is not XML 1.0 text", inner);
            prop_assert!(!inner.contains(['<', '>', '"', '\'']));
            // Every `&` starts one of the five entities, and reading them back gives the text
            // without the characters XML cannot carry.
            let mut read = String::new();
            let mut rest = inner;
            while let Some(i) = rest.find('&') {
                read.push_str(&rest[..i]);
                let after = &rest[i..];
                let (entity, c) = [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>'), ("&quot;", '"'), ("&apos;", '\'')]
                    .into_iter()
                    .find(|(e, _)| after.starts_with(e))
                    .ok_or_else(|| TestCaseError::fail(format!("a bare & in {inner:?}")))?;
                read.push(c);
                rest = &after[entity.len()..];
            }
            read.push_str(rest);
            let carried: String = text.chars().filter(|&c| is_xml_char(c)).collect();
            prop_assert_eq!(read, carried);
        }
    }
}
