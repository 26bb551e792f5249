//! Server-sent events as the runtime streams a generator handler's
//! results (`upstream`, `downstream`, `error`, then `done`): written by
//! the runtime, read back by the sidecar.

/// `Content-Type` of an event stream.
pub const CONTENT_TYPE: &str = "text/event-stream";

pub const UPSTREAM: &str = "upstream";
pub const DOWNSTREAM: &str = "downstream";
pub const ERROR: &str = "error";
pub const DONE: &str = "done";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

impl Event {
    pub fn new(name: &str, data: impl Into<String>) -> Event {
        Event {
            name: name.to_owned(),
            data: data.into(),
        }
    }
}

/// Appends one event; data with line breaks becomes several `data:`
/// lines, as the format wants.
pub fn write(out: &mut String, event: &Event) {
    out.push_str("event: ");
    out.push_str(&event.name);
    out.push('\n');
    for line in event.data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

/// The events of a whole stream. Comment lines and unknown fields are
/// skipped; an event without a name is a `message`, as in browsers.
pub fn parse(text: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let (mut name, mut data, mut seen) = (String::new(), Vec::<&str>::new(), false);
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if seen {
                let name = std::mem::take(&mut name);
                events.push(Event {
                    name: if name.is_empty() {
                        "message".into()
                    } else {
                        name
                    },
                    data: data.join("\n"),
                });
                data.clear();
                seen = false;
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_owned(),
            "data" => data.push(value),
            _ => continue,
        }
        seen = true;
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_events_parse_back() {
        let events = vec![
            Event::new(DOWNSTREAM, r#"{"payload":1}"#),
            Event::new(ERROR, "two\nlines"),
            Event::new(DONE, ""),
        ];
        let mut text = String::new();
        for event in &events {
            write(&mut text, event);
        }
        assert_eq!(parse(&text), events);
    }

    #[test]
    fn comments_crlf_and_unnamed_events() {
        let text = ": keep-alive\r\ndata: a\r\ndata: b\r\n\r\nevent: done\r\ndata:\r\n";
        assert_eq!(
            parse(text),
            vec![Event::new("message", "a\nb"), Event::new(DONE, "")]
        );
    }
}
