//! The JAAS configuration text Kafka brokers read from `sasl.jaas.config` (and its
//! `listener.name.NAME.MECHANISM.` variants): `LoginModuleClass flag key="value" ...;`. sprat
//! needs only the options of the PLAIN login module, whose `user_NAME="password"` options are the
//! users PLAIN accepts (Kafka's `PlainServerCallbackHandler`).
//!
//! Errors never quote the text, which holds passwords.

use std::collections::BTreeMap;

/// One login module entry: its class name and options (values unquoted).
#[derive(Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for LoginModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.options.keys().collect();
        write!(f, "LoginModule({}, options {keys:?})", self.class)
    }
}

/// The flags a JAAS entry may carry.
const CONTROL_FLAGS: [&str; 4] = ["required", "requisite", "sufficient", "optional"];

/// Parses `class flag key=value ... ;`, with values quoted (`"..."`, `\` escapes the next
/// character) or bare. Only one login module is accepted, as Kafka's `sasl.jaas.config` does.
pub fn parse(text: &str) -> Result<LoginModule, String> {
    let tokens = tokenize(text)?;
    let mut tokens = tokens.into_iter();
    let class = match tokens.next() {
        Some(Token::Word(class)) => class,
        _ => return Err("expected a login module class name".into()),
    };
    match tokens.next() {
        Some(Token::Word(flag)) if CONTROL_FLAGS.contains(&flag.to_ascii_lowercase().as_str()) => {}
        _ => {
            return Err(format!(
                "expected a control flag (required, ...) after {class}"
            ));
        }
    }
    let mut options = BTreeMap::new();
    loop {
        match tokens.next() {
            Some(Token::End) => break,
            Some(Token::Word(key)) => {
                if tokens.next() != Some(Token::Equals) {
                    return Err(format!("option {key} needs '=' and a value"));
                }
                match tokens.next() {
                    Some(Token::Word(value)) => {
                        options.insert(key, value);
                    }
                    _ => return Err(format!("option {key} has no value")),
                }
            }
            _ => return Err("expected key=value options ending with ';'".into()),
        }
    }
    if tokens.next().is_some() {
        return Err("only one login module may be given".into());
    }
    Ok(LoginModule { class, options })
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Equals,
    End,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                tokens.push(Token::Equals);
            }
            ';' => {
                chars.next();
                tokens.push(Token::End);
            }
            '"' => {
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.push(chars.next().ok_or("unterminated quoted value")?),
                        Some(c) => word.push(c),
                        None => return Err("unterminated quoted value".into()),
                    }
                }
                tokens.push(Token::Word(word));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// The users of a PLAIN login module: every `user_NAME="password"` option.
pub fn plain_users(module: &LoginModule) -> BTreeMap<String, String> {
    module
        .options
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_login_module_with_users() {
        let module = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret"
               user_admin="admin-secret" user_alice="al\"ice" user_bob=bob-pw;"#,
        )
        .unwrap();
        assert_eq!(
            module.class,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        let users = plain_users(&module);
        assert_eq!(users.len(), 3);
        assert_eq!(users["alice"], "al\"ice");
        assert_eq!(users["bob"], "bob-pw");
        assert_eq!(module.options["username"], "admin");
    }

    #[test]
    fn malformed_text_is_refused_without_quoting_it() {
        for bad in [
            "",
            "Module",
            "Module maybe;",
            "Module required user_a;",
            "Module required user_a=\"secret",
            "Module required user_a=\"secret\"",
            "Module required; Other required;",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(!error.contains("secret"), "{bad}: {error}");
        }
    }
}
