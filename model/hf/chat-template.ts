/**
 * Our chat template (model/tokenizer/chat-template.ts) as a Jinja template for tokenizer_config.json:
 * <|bos|> then <|role|> content <|eot|> per message, then <|assistant|> for a generation prompt.
 * Tokenizing the rendered text with the exported tokenizer.json gives our ids as long as no message
 * contains the text of a special token (a tokenizer that matches added tokens in text would read it
 * as the token; ours never does).
 */
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] not in ['system', 'user', 'assistant'] %}" +
  "{{ raise_exception('roles are system, user and assistant') }}{% endif %}" +
  "{{ '<|' + message['role'] + '|>' + message['content'] + '<|eot|>' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";
