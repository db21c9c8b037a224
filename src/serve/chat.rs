//! Chat templates: the Jinja text that Hugging Face models (tokenizer_config.json) and
//! GGUF files (`tokenizer.chat_template`) carry to turn messages into a prompt, rendered
//! with minijinja as `transformers`' `apply_chat_template` renders it with Jinja2.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One message of a chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// For models that carry no template (checkpoints of ours, which are trained on plain
/// text): the messages' contents one after another, each followed by a blank line but the
/// last, so that a prompt written for the model's training template reaches it unchanged.
pub const PLAIN: &str =
    "{% for message in messages %}{{ message['content'] }}{% if not loop.last %}\n\n{% endif %}{% endfor %}";

pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// A template with the BOS and EOS token texts it may refer to; checked by rendering
    /// a short conversation.
    pub fn new(source: String, bos: &str, eos: &str) -> Result<ChatTemplate> {
        let template = ChatTemplate { source, bos: bos.into(), eos: eos.into() };
        let probe = [
            Message { role: "system".into(), content: "S".into() },
            Message { role: "user".into(), content: "U".into() },
        ];
        template.render(&probe).map_err(|e| Error::user(format!("the chat template does not render: {e}")))?;
        Ok(template)
    }

    /// The prompt for `messages`, ending where the assistant's reply begins.
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        let mut env = minijinja::Environment::new();
        env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        let context = minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        };
        env.render_str(&self.source, context).map_err(|e| {
            let mut text = e.to_string();
            if let Some(detail) = e.detail() {
                text = format!("{text}: {detail}");
            }
            Error::user(format!("chat template: {text}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's template (from SmolLM2-135M-Instruct.Q4_1.gguf).
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn messages(pairs: &[(&str, &str)]) -> Vec<Message> {
        pairs.iter().map(|(r, c)| Message { role: r.to_string(), content: c.to_string() }).collect()
    }

    #[test]
    fn chatml_renders_as_transformers_does() -> Result<()> {
        let t = ChatTemplate::new(SMOLLM2.into(), "<|im_start|>", "<|im_end|>")?;
        assert_eq!(
            t.render(&messages(&[("user", "What is 2+2?")]))?,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            t.render(&messages(&[("system", "Be brief."), ("user", "Hi")]))?,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        Ok(())
    }

    #[test]
    fn plain_joins_the_contents() -> Result<()> {
        let t = ChatTemplate::new(PLAIN.into(), "", "<|endoftext|>")?;
        assert_eq!(
            t.render(&messages(&[("system", "A"), ("user", "Question: 1+1?\nAnswer:")]))?,
            "A\n\nQuestion: 1+1?\nAnswer:"
        );
        Ok(())
    }

    #[test]
    fn broken_templates_and_raised_errors_are_clear() {
        let err = ChatTemplate::new("{% for m in messages %}".into(), "", "").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("does not render")));
        let strict = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}x";
        let t = ChatTemplate { source: strict.into(), bos: String::new(), eos: String::new() };
        let err = t.render(&messages(&[("system", "S")])).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("no system role")), "{err:?}");
    }
}
