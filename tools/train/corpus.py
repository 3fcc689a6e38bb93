#!/usr/bin/python3
"""Build palaver-tiny's training corpus: chat dialogues about palaver and WordNet words.

DESIGN
Every fact the model learns comes from a source that ships with palaver or
with Debian, so the answers stay true when the sources change:
  - man/palaver.1: options (with their config keys), commands, chat commands
    and keys (when the page has them), configuration keys and env variables;
  - ui/slash.c: the chat's slash commands and their one-line help;
  - `palaver sessions --help`: the history subcommands;
  - config.yaml: the comment above each key;
  - WordNet 3.0 (Debian's wordnet-base): "what does WORD mean?" answered with
    the gloss of the word's most frequent sense;
  - greetings and small talk written here.
Each fact becomes several dialogues, one per question phrasing.  The
phrasings are split: TRAIN templates make the training set, HELD templates
(never seen in training) make the 30 held-out help questions; 30 WordNet
words are held out entirely.  Output (in OUT, default tools/train/out):
  train.jsonl      one dialogue per line: {"messages": [{"role", "content"}]}
  heldout.jsonl    held-out dialogues (help and words), same format
  heldout_help.tsv question, expected names (|-separated), reference answer
  heldout_words.tsv trained|unseen, question, word, part of speech, gloss
  heldout.txt      the held-out dialogues as chatml text
  heldout_plain.txt the held-out messages as plain lines (for perplexity)
Everything is deterministic (seeded shuffles).
"""

import json
import os
import random
import re
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORDNET = os.environ.get("WORDNET_DIR", "/usr/share/wordnet")
SEED = 1234
N_WORDS = int(os.environ.get("TINY_WORDS", "700"))   # WordNet words trained on
N_HELD_WORDS = 30
N_HELD_HELP = 30

SYSTEM_PROMPTS = [
    "You are palaver-tiny, a small assistant built into palaver.",
    "You are a helpful assistant.",
    "Answer briefly.",
]

# ---------------------------------------------------------------- roff ----

def roff_text(s):
    """Plain text of one roff line (fonts, escapes and macro quoting removed)."""
    s = re.sub(r'\\f[BIRP]', '', s)
    s = s.replace('\\-', '-').replace('\\(ti', '~').replace('\\(aq', "'")
    s = s.replace('\\ ', ' ').replace('\\&', '').replace('\\e', '\\')
    m = re.match(r'^\.(B|I|BR|RB|IR|RI|BI|IB)\s+(.*)$', s)
    if m:
        # alternating-font macros: arguments are joined without spaces
        args = re.findall(r'"([^"]*)"|(\S+)', m.group(2))
        s = ''.join(a or b for a, b in args)
    elif s.startswith('.'):
        return None
    return s


def man_sections(path):
    """({section: [(term, description)]}, {section: first paragraph}) for the page.

    A .SS subsection is its own section, named "SECTION/subsection" (the
    COMMANDS section has one per command, with the command's options as .TP
    entries and its description as the first paragraph)."""
    out, paras, top, sec, term, desc, state = {}, {}, None, None, None, [], None
    para = []

    def flush():
        if sec and term is not None:
            d = ' '.join(desc).strip()
            d = re.sub(r'\s+([.,;:)])', r'\1', d)
            d = re.sub(r'\(\s+', '(', d)
            out.setdefault(sec, []).append((term.strip(), d))
        if sec and para and sec not in paras:
            paras[sec] = ' '.join(para).strip()

    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if line.startswith('.SH') or line.startswith('.SS'):
                flush()
                name = line[4:].strip().strip('"')
                if line.startswith('.SH'):
                    top = sec = name
                else:
                    sec = "%s/%s" % (top, name)
                term, desc, state, para = None, [], 'para', []
            elif line.startswith('.SY'):
                state = 'syn'  # a synopsis: not part of the description
            elif line.startswith('.YS'):
                state = 'para'
            elif state == 'syn':
                continue
            elif line.startswith('.TP'):
                flush()
                term, desc, state, para = None, [], 'term', []
            elif line.startswith(('.PP', '.IP', '.RS', '.RE', '.nf', '.fi', '.EX', '.EE')):
                flush()
                term, desc = None, []
                state = 'para' if state == 'para' and not para else None
            elif state == 'term':
                term, state = roff_text(line) or '', 'desc'
            elif state == 'desc':
                t = roff_text(line)
                if t is not None:
                    desc.append(t)
            elif state == 'para':
                t = roff_text(line)
                if t is not None:
                    para.append(t)
        flush()
    return out, paras


def first_sentence(d):
    m = re.match(r'(.+?[.;])(\s|$)', d)
    return m.group(1).rstrip(';') + '.' if m and m.group(1).endswith(';') else (m.group(1) if m else d)

# ------------------------------------------------------------ facts -------

class Fact:
    """One thing to know: names to ask about, topics, and the answer."""

    def __init__(self, kind, names, answer, topics, expect):
        self.kind = kind        # option, command, config, slash, session, key, task
        self.names = names      # how a user may refer to it ("--ctx", "context")
        self.answer = answer
        self.topics = topics    # noun phrases for "how do I change X" questions
        self.expect = expect    # strings a correct answer names


# Topics: what each option/key is about, in a user's words (written here; the
# answers themselves come from the sources).
TOPICS = {
    "model": ["the model", "which model file to use", "the GGUF file"],
    "config": ["a config file", "another configuration file"],
    "threads": ["the number of threads", "how many CPU threads are used"],
    "context": ["the context length", "the context size"],
    "max_tokens": ["the maximum reply length", "the number of tokens per reply"],
    "temperature": ["the temperature", "how random the replies are"],
    "top_k": ["top-k sampling", "the top k value"],
    "top_p": ["top-p sampling", "nucleus sampling"],
    "min_p": ["min-p sampling", "the min p value"],
    "seed": ["the random seed", "the seed"],
    "system_prompt": ["the system prompt", "the system message"],
    "backend": ["the backend", "the GPU or CPU backend"],
    "batch_size": ["the batch size", "the prefill batch size"],
    "chat_template": ["the chat template", "the prompt template"],
    "prompt": ["a one-shot prompt", "a single question from the command line"],
    "batch": ["batch mode", "non-interactive mode"],
    "json": ["JSON output", "JSON lines output"],
    "history": ["the history file", "where chats are saved"],
    "no_history": ["not saving the chat", "private chats without history"],
    "session": ["continuing a saved chat", "resuming an old session"],
    "log_level": ["the log level", "how much is logged"],
    "log_file": ["the log file", "where the log goes"],
    "verbose": ["verbose output", "more detail on stderr"],
    "version": ["the version", "which version I have"],
    "help": ["the help", "the list of options"],
    "typical_p": ["typical sampling", "typical p"],
    "repeat_penalty": ["the repeat penalty", "repetition penalty"],
    "repeat_last_n": ["how many tokens the penalties look at"],
    "presence_penalty": ["the presence penalty"],
    "frequency_penalty": ["the frequency penalty"],
    "context_overflow": ["what happens when the context is full", "context overflow"],
    "keep": ["the tokens kept on a context shift"],
    "stop": ["stop strings", "stop words"],
    "max_buffered_tokens": ["how far the engine runs ahead of the screen"],
    "max_time": ["a time limit for replies", "the maximum time per reply"],
    "memory_limit": ["the memory limit", "how much memory palaver may use"],
    "memory_mode": ["the memory mode", "what happens when memory does not fit"],
    "history_enabled": ["saving chats", "whether chats are saved"],
    "ui_theme": ["the colour theme", "the theme"],
    "status_pane": ["the status pane", "the status bar"],
    "word_wrap": ["word wrap", "line wrapping"],
}

CMD_TOPICS = {
    "inspect": ["look at a GGUF file's metadata", "see the tensors of a model file"],
    "tokenize": ["see the tokens of a text", "turn text into token ids"],
    "logits": ["get the logits for some tokens", "dump the model's logits"],
    "bench": ["measure the speed", "benchmark a model"],
    "perplexity": ["measure perplexity", "evaluate a model on a text"],
    "sessions": ["manage my old chats", "work with the chat history from the shell"],
    "mkmodel": ["make a random test model", "create a GGUF with random weights"],
    "config": ["see the effective configuration", "check where a setting comes from"],
}

SLASH_TOPICS = {
    "clear": ["clear the screen"], "copy": ["copy the last reply", "copy an answer"],
    "delete": ["delete this chat", "delete the current session"],
    "edit": ["edit my last message", "change what I sent"],
    "export": ["export a chat to Markdown", "save a chat as a file"],
    "help": ["see the chat commands", "list the keys"],
    "model": ["switch to another model", "load a different model in the chat"],
    "new": ["start a new chat", "open a new session"],
    "open": ["open a saved chat", "go back to an old session"],
    "quit": ["leave the chat", "exit palaver"],
    "regen": ["regenerate the answer", "get a new reply"],
    "rename": ["rename a chat", "give the session a title"],
    "search": ["find something in past conversations", "search inside the chat"],
    "sessions": ["pick a saved session", "browse my chats"],
    "set": ["change the temperature in the chat", "change sampling settings during a chat"],
    "stats": ["see the speed of the last reply", "show the figures of the last answer"],
    "system": ["change the system prompt in the chat", "see the system prompt"],
}

# Question phrasings.  {n} = a name, {t} = a topic.  The HELD lists are only
# used for the held-out questions.
NAME_Q = [
    "What does {n} do?", "What is {n} for?", "what does {n} mean", "Explain {n}.",
    "Tell me about {n}.", "What is {n}?", "how does {n} work?", "{n}?",
    "Can you explain {n}?", "what's {n}", "Help with {n}.", "What is the purpose of {n}?",
    "Please explain {n} to me.", "When would I use {n}?", "{n} - what is that?",
    "I need help with {n}.", "Info on {n}?", "What happens with {n}?",
    "Why would I use {n}?", "what is {n} good for",
]
NAME_Q_HELD = [
    "I keep seeing {n} mentioned. What is it about?",
    "Could you describe what {n} is used for?",
]
TOPIC_Q = [
    "How do I set {t}?", "How can I change {t}?", "how do i change {t}",
    "Which option controls {t}?", "Where do I configure {t}?", "How do I control {t}?",
    "What sets {t}?", "How to change {t}?", "What do I use for {t}?",
    "Which setting is {t}?", "I want to set {t}.", "Where is {t} set?",
    "What controls {t}?", "Can I change {t}?", "How is {t} chosen?",
    "Which flag sets {t}?", "Is there an option for {t}?", "how do I pick {t}",
]
TOPIC_Q_HELD = [
    "Is there a way to adjust {t}?",
    "I would like to tweak {t}. What should I use?",
]
DO_Q = [
    "How do I {t}?", "How can I {t}?", "how do i {t}", "How to {t}?", "I want to {t}.",
    "Can I {t}?", "what command lets me {t}?", "I need to {t}.", "Which command will {t}?",
    "Help me {t}.", "How would I {t}?", "Tell me how to {t}.", "Is there a command to {t}?",
    "What should I type to {t}?", "how can i {t}", "I'd like to {t}.",
]
DO_Q_HELD = [
    "Is it possible to {t} somehow?",
    "What is the way to {t}?",
]


def key_to_topic(key):
    k = key.split('.')[-1] if key.split('.')[0] in ('sampling',) else key.replace('.', '_')
    if key == 'history.enabled':
        return 'history_enabled'
    if key == 'memory.limit':
        return 'memory_limit'
    if key == 'memory.mode':
        return 'memory_mode'
    if key == 'ui.theme':
        return 'ui_theme'
    if key == 'ui.status_pane':
        return 'status_pane'
    if key == 'ui.word_wrap':
        return 'word_wrap'
    if key.startswith('engine.'):
        return key[7:]
    if key == 'history.path':
        return 'history'
    if key == 'log.file':
        return 'log_file'
    if key == 'log.level':
        return 'log_level'
    return k


def option_facts(man):
    facts = []
    for term, desc in man.get('OPTIONS', []):
        names = re.findall(r'--?[a-z][a-z-]*', term)
        if not names:
            continue
        arg = term.split()[-1] if len(term.split()) > len(names) else ''
        if arg in names:
            arg = ''
        keym = re.search(r'Key ([a-z_.]*[a-z_])', desc)
        key = keym.group(1) if keym else None
        d = re.sub(r'\s*Key [a-z_.]+\.?', '', desc).strip()
        longn = [n for n in names if n.startswith('--')]
        shown = ', '.join(names) + (' ' + arg if arg else '')
        ans = "%s: %s" % (shown, d)
        if key:
            ans += " In config.yaml the key is %s." % key
        tname = longn[0][2:].replace('-', '_') if longn else names[0][1:]
        tname = {'temp': 'temperature', 'ctx': 'context', 'system': 'system_prompt',
                 'model': 'model'}.get(tname, tname)
        if key:
            tname = key_to_topic(key)
        topics = TOPICS.get(tname, [])
        expect = longn[:1] + ([key] if key else [])
        facts.append(Fact('option', names + ([key] if key else []), ans, topics, expect))
    return facts


def command_facts(man, paras):
    facts = []
    cmds = [(t.split()[0], d) for t, d in man.get('COMMANDS', []) if re.fullmatch(r'[a-z]+( .*)?', t)
            and not any(k.startswith('COMMANDS/') for k in man)]
    cmds += [(k.split('/', 1)[1].split()[0], paras.get(k, ''))
             for k in list(man) + list(paras) if k.startswith('COMMANDS/')]
    seen = set()
    for name, desc in cmds:
        if name in seen or not desc:
            continue
        seen.add(name)
        d = re.sub(r'\s+([.,;:)])', r'\1', desc)
        d = ' '.join(re.findall(r'.+?\.(?=\s|$)', d)[:2]) or d
        ans = "palaver %s: %s Run 'palaver %s --help' for its options." % (name, d, name)
        facts.append(Fact('command', ["palaver %s" % name, "the %s command" % name], ans,
                          CMD_TOPICS.get(name, []), ["palaver %s" % name]))
        for term, od in man.get('COMMANDS/' + name, []):
            opt = term.split()[0]
            if name == 'sessions' or not opt.startswith('-'):
                continue  # the sessions subcommands come from session_facts
            use = "palaver %s %s" % (name, term.split(', ')[-1])
            facts.append(Fact('command', ["palaver %s %s" % (name, opt.rstrip(','))],
                              "%s: %s" % (use, od), [], ["palaver %s" % name]))
    return facts


def config_comments(path):
    """{dotted key: comment text} from config.yaml."""
    out, section, comment = {}, None, []
    with open(path, encoding='utf-8') as f:
        for line in f:
            s = line.rstrip('\n')
            if not s.strip():
                comment = []
                continue
            indent = len(s) - len(s.lstrip())
            body = s.strip()
            if body.startswith('#'):
                comment.append(body.lstrip('#').strip())
                continue
            m = re.match(r'([a-z_]+):\s*(.*)$', body)
            if not m:
                continue
            if indent == 0:
                section = m.group(1) if m.group(2) == '' else None
                key = m.group(1)
            else:
                key = "%s.%s" % (section, m.group(1))
            if m.group(2) != '' and comment:
                out[key] = (' '.join(comment), m.group(2))
            comment = []
    return out


def config_facts(man, cfgpath, covered):
    comments = config_comments(cfgpath)
    facts = []
    for term, desc in man.get('CONFIGURATION', []):
        m = re.match(r'([a-z_.]+)(?:\s*\((PALAVER_[A-Z_]+)\))?', term)
        if not m:
            continue
        key, env = m.group(1), m.group(2)
        text = comments[key][0] if key in comments else desc
        default = comments[key][1] if key in comments else None
        ans = "The config key %s: %s" % (key, text)
        if default is not None and 'default' not in text:
            ans += " Default: %s." % default
        if env and env not in ans:
            ans += " Environment variable: %s." % env
        names = [key, "the %s key" % key] + ([env] if env else [])
        topics = [] if key in covered else TOPICS.get(key_to_topic(key), [])
        facts.append(Fact('config', names, ans, topics, [key]))
    return facts


def slash_facts(slash_c):
    facts = []
    with open(slash_c, encoding='utf-8') as f:
        src = f.read()
    for name, args, help_ in re.findall(r'\{ SLASH_[A-Z]+, "([a-z]+)", "([^"]*)", "([^"]*)"', src):
        use = "/%s%s" % (name, ' ' + args if args else '')
        ans = "In the chat, type %s to %s." % (use, help_)
        facts.append(Fact('slash', ["/%s" % name, "the /%s command" % name], ans,
                          SLASH_TOPICS.get(name, []), ["/%s" % name]))
    return facts


def session_facts(palaver):
    """palaver sessions subcommands from its --help."""
    try:
        out = subprocess.run([palaver, 'sessions', '--help'], capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return []
    facts = []
    what = {
        'list': ("list my saved chats", "lists the saved chats"),
        'show': ("show an old chat", "prints a saved chat"),
        'search': ("search my old chats", "searches all saved chats for the words"),
        'export': ("export a chat from the command line", "writes a chat as Markdown or JSON"),
        'import': ("import a chat", "reads a chat exported as JSON back into the history"),
        'rename': ("rename a saved chat from the shell", "gives a saved chat a new title"),
        'delete': ("delete an old chat from the shell", "deletes a saved chat"),
    }
    for line in out.splitlines():
        m = re.match(r'\s*(?:usage: )?palaver sessions (\[?list\]?|[a-z]+)(.*)$', line)
        if not m:
            continue
        sub = m.group(1).strip('[]')
        if sub not in what:
            continue
        usage = ("palaver sessions %s%s" % (m.group(1), m.group(2))).strip()
        topic, verb = what[sub]
        usage = usage.rstrip(".")
        ans = "Run %s: it %s." % (usage, verb)
        if sub == 'search':
            ans = ("In the chat, type /search QUERY; from the shell, run %s. Both search "
                   "all saved chats." % usage)
        facts.append(Fact('session', ["palaver sessions %s" % sub], ans, [topic],
                          ["palaver sessions %s" % sub] + (["/search"] if sub == 'search' else [])))
    return facts


def merge_topics(facts):
    """A task topic used by both a slash command and a sessions subcommand gets both answers."""
    return facts

# --------------------------------------------------------- small talk -----

SMALL_TALK = [
    (["hi", "Hello!", "hello", "Hey", "hey there", "Good morning", "Hi!", "good evening", "Howdy"],
     ["Hello! I am palaver-tiny. Ask me about palaver's commands, keys and settings, or what a word means.",
      "Hi! How can I help? I know palaver's options and commands, and many English words."]),
    (["How are you?", "how are you doing", "How's it going?", "are you ok?"],
     ["I am fine, thank you. What would you like to know about palaver?"]),
    (["Who are you?", "what are you", "What is your name?", "who am I talking to?",
      "Which model are you?", "are you chatgpt?"],
     ["I am palaver-tiny, a very small language model that ships with palaver. I answer questions about palaver and explain English words."]),
    (["What can you do?", "what do you know", "How can you help me?", "what are you good at?"],
     ["I can explain palaver's options, commands, chat commands and config keys, and tell you what an English word means. For anything else, load a real model with -m FILE."]),
    (["What is palaver?", "what is this program", "Tell me about palaver.", "what does palaver do"],
     ["palaver is a terminal chat program that runs language models from GGUF files locally, with no network. It saves your chats in a history database."]),
    (["Thanks!", "thank you", "Thanks a lot.", "thx", "great, thanks"],
     ["You are welcome!", "Glad to help."]),
    (["Bye", "goodbye", "See you later.", "bye!"],
     ["Goodbye! Type /quit or press Ctrl-D to leave palaver."]),
    (["Write me a poem.", "Can you write code?", "Write a python script.", "what is the capital of France?",
      "Solve 12 times 37.", "Tell me a story.", "translate this to German", "What is the weather today?"],
     ["I am only a tiny model: I know palaver and English word meanings, not much else. For general questions, load a real GGUF model with palaver -m FILE, or set the model key in config.yaml."]),
    (["Tell me a joke.", "say something funny"],
     ["I am a model of 25 megabytes. That is the joke."]),
    (["How do I get a better model?", "where do I find bigger models?", "how do I use a real model?",
      "can I use llama with palaver?", "how do I use my own model?"],
     ["Download a GGUF model, for example Qwen2.5 0.5B Instruct in Q4_0, and start palaver -m FILE, or put the path under the model key of ~/.config/palaver/config.yaml."]),
    (["yes", "ok", "okay", "cool", "nice"],
     ["Anything else you would like to know?"]),
    (["help", "I need help", "help me", "what should I ask?"],
     ["Ask me about a palaver option (like --temp), a chat command (like /search), a config key (like sampling.top_p), or what a word means. In the chat, /help lists the commands and keys."]),
]

# ------------------------------------------------------------ wordnet -----

POS_NAME = {'n': 'noun', 'v': 'verb', 'a': 'adjective', 's': 'adjective', 'r': 'adverb'}
POS_FILE = {'n': 'noun', 'v': 'verb', 'a': 'adj', 'r': 'adv'}

WORD_Q = [
    "What does {w} mean?", "what does {w} mean", "What is the meaning of {w}?", "Define {w}.",
    "define {w}", "Meaning of {w}?", "What's the definition of {w}?", "{w}: what does it mean?",
    "Explain the word {w}.", "What does the word {w} mean?",
    "Give me the definition of {w}.", "What do people mean by {w}?", "Could you define {w}?",
    "Meaning of the word {w}, please.", "What is meant by {w}?", "Please define the word {w}.",
    "I don't know the word {w}. What is it?", "Dictionary: {w}", "Explain what {w} means.",
    "What's the meaning of the word {w}?",
]
WORD_Q_HELD = [
    "I came across the word {w}. What does it mean?",
    "Can you tell me what {w} means?",
]


def wordnet_words():
    """[(lemma, pos, gloss, tagcount)] for single-word lemmas, most frequent sense."""
    counts, bypos = {}, {}
    with open(os.path.join(WORDNET, 'cntlist.rev'), encoding='latin-1') as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            lemma, ss = parts[0].split('%')[0], parts[0].split('%')[1][0]
            pos = {'1': 'n', '2': 'v', '3': 'a', '4': 'r', '5': 'a'}.get(ss)
            counts[lemma] = counts.get(lemma, 0) + int(parts[2])
            bypos[(lemma, pos)] = bypos.get((lemma, pos), 0) + int(parts[2])
    best = {}
    for pos, fn in POS_FILE.items():
        offs = {}
        with open(os.path.join(WORDNET, 'index.' + fn), encoding='latin-1') as f:
            for line in f:
                if line.startswith(' '):
                    continue
                p = line.split()
                lemma = p[0]
                if not re.fullmatch(r'[a-z]{3,14}', lemma) or lemma not in counts:
                    continue
                offs[lemma] = p[-int(p[2]):][0]
        need = set(offs.values())
        gloss = {}
        with open(os.path.join(WORDNET, 'data.' + fn), encoding='latin-1') as f:
            for line in f:
                if line[:8] in need:
                    g = line.split('|', 1)[1].strip()
                    gloss[line[:8]] = g
        for lemma, off in offs.items():
            # keep the part of speech the word is most often tagged with
            c = bypos.get((lemma, pos), 0)
            if lemma not in best or c > best[lemma][2]:
                best[lemma] = (pos, gloss[off], c)
    words = []
    for lemma, (pos, g, _) in best.items():
        d = g.split(';')[0].strip().strip('"').strip()
        d = re.sub(r'^\((?:usually|often|sometimes|of|in|used)[^)]*\)\s*', '', d)
        ex = re.findall(r'"([^"]+)"', g)
        if len(d) < 8 or len(d) > 160:
            continue
        words.append((lemma, POS_NAME[pos], d, ex[0] if ex and len(ex[0]) < 80 else None,
                      counts[lemma]))
    words.sort(key=lambda w: (-w[4], w[0]))
    return words


def word_answer(lemma, pos, d, ex):
    a = "%s (%s): %s." % (lemma, pos, d.rstrip('.'))
    if ex:
        a += ' For example: "%s".' % ex
    return a

# ------------------------------------------------------------- output -----

def dialogue(q, a, rng, system_ok=True):
    msgs = []
    if system_ok and rng.random() < 0.15:
        msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    msgs.append({"role": "user", "content": q})
    msgs.append({"role": "assistant", "content": a})
    return msgs


def chatml(msgs):
    return ''.join("<|im_start|>%s\n%s<|im_end|>\n" % (m['role'], m['content']) for m in msgs)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'tools', 'train', 'out')
    palaver = os.environ.get('PALAVER', os.path.join(ROOT, 'build', 'palaver'))
    os.makedirs(out, exist_ok=True)
    rng = random.Random(SEED)
    man, paras = man_sections(os.path.join(ROOT, 'man', 'palaver.1'))
    opts = option_facts(man)
    covered = {n for f in opts for n in f.names if not n.startswith('-')}
    facts = (opts + command_facts(man, paras) + config_facts(man, os.path.join(ROOT, 'config.yaml'), covered)
             + slash_facts(os.path.join(ROOT, 'ui', 'slash.c')) + session_facts(palaver))
    # chat commands and keys from the man page, once it describes them
    # (slash commands come from ui/slash.c; the keys from here)
    keys = [e for k in man if k.split('/')[0] == 'CHAT COMMANDS AND KEYS' for e in man[k]]
    for term, desc in keys:
        if term.startswith('/'):
            continue
        facts.append(Fact('key', [term], "In the chat, %s: %s" % (term, desc), [],
                          [k.strip() for k in term.split(',')]))

    train, held, held_help = [], [], []
    # The held-out help questions: 30 facts, each asked once with a HELD phrasing.
    askable = [(f, 'name') for f in facts if f.kind in ('option', 'slash', 'command')
               and len(f.names[0].split()) <= 2]
    askable += [(f, 'topic') for f in facts if f.topics]
    rng.shuffle(askable)
    picked = askable[:N_HELD_HELP]
    for f, how in picked:
        if how == 'name':
            q = rng.choice(NAME_Q_HELD).format(n=f.names[0])
        elif f.kind in ('slash', 'command', 'session'):
            q = rng.choice(DO_Q_HELD).format(t=f.topics[0])
        else:
            q = rng.choice(TOPIC_Q_HELD).format(t=f.topics[0])
        held_help.append((q, f.expect, f.answer))
        held.append(dialogue(q, f.answer, rng, system_ok=False))

    # Training dialogues: every fact under its names and topics, TRAIN phrasings.
    for f in facts:
        for n in f.names:
            for tpl in NAME_Q:
                train.append(dialogue(tpl.format(n=n), f.answer, rng))
        for t in f.topics:
            qs = DO_Q if f.kind in ('slash', 'command', 'session') else TOPIC_Q
            for tpl in qs:
                train.append(dialogue(tpl.format(t=t), f.answer, rng))
    for qs, answers in SMALL_TALK:
        for q in qs:
            for _ in range(3):
                train.append(dialogue(q, rng.choice(answers), rng))
    # a few two-turn dialogues so the model sees a conversation go on
    singles = list(train)
    for _ in range(len(singles) // 12):
        a, b = rng.sample(singles, 2)
        train.append([m for m in a if m['role'] != 'system'] + [m for m in b if m['role'] != 'system'])

    words = wordnet_words()
    top = words[:N_WORDS + 200]
    rng.shuffle(top)
    held_words = top[:N_HELD_WORDS]
    held_set = {w[0] for w in held_words}
    trained = [w for w in words[:N_WORDS + N_HELD_WORDS] if w[0] not in held_set][:N_WORDS]
    for lemma, pos, d, ex, _ in trained:
        a = word_answer(lemma, pos, d, ex)
        for tpl in rng.sample(WORD_Q, 10):
            train.append(dialogue(tpl.format(w=lemma), a, rng))
    for lemma, pos, d, ex, _ in held_words:
        held.append(dialogue(rng.choice(WORD_Q).format(w=lemma), word_answer(lemma, pos, d, ex), rng,
                             system_ok=False))
    # Held-out word questions: 30 trained words asked with phrasings that no
    # training question uses (the dictionary as it is meant to be used), and
    # the 30 held-out words themselves (never seen: a stricter test).
    asked = rng.sample(trained, N_HELD_WORDS)
    word_qs = [(rng.choice(WORD_Q_HELD).format(w=w[0]), w, 'trained') for w in asked]
    word_qs += [(rng.choice(WORD_Q_HELD).format(w=w[0]), w, 'unseen') for w in held_words]

    rng.shuffle(train)
    with open(os.path.join(out, 'train.jsonl'), 'w', encoding='utf-8') as f:
        for msgs in train:
            f.write(json.dumps({"messages": msgs}) + '\n')
    with open(os.path.join(out, 'heldout.jsonl'), 'w', encoding='utf-8') as f:
        for msgs in held:
            f.write(json.dumps({"messages": msgs}) + '\n')
    with open(os.path.join(out, 'heldout.txt'), 'w', encoding='utf-8') as f:
        for msgs in held:
            f.write(chatml(msgs))
    # the same dialogues as plain text, one message a line: `palaver perplexity`
    # reads control tokens written in a file as plain text, so none are used
    with open(os.path.join(out, 'heldout_plain.txt'), 'w', encoding='utf-8') as f:
        for msgs in held:
            for m in msgs:
                f.write(m['content'] + '\n')
    with open(os.path.join(out, 'heldout_help.tsv'), 'w', encoding='utf-8') as f:
        for q, exp, a in held_help:
            f.write("%s\t%s\t%s\n" % (q, '|'.join(exp), a))
    with open(os.path.join(out, 'heldout_words.tsv'), 'w', encoding='utf-8') as f:
        for q, (lemma, pos, d, ex, _), kind in word_qs:
            f.write("%s\t%s\t%s\t%s\t%s\n" % (kind, q, lemma, pos, d))
    kinds = {}
    for fct in facts:
        kinds[fct.kind] = kinds.get(fct.kind, 0) + 1
    print("corpus: %d facts %s, %d words (+%d held out), %d training dialogues, %d held out"
          % (len(facts), kinds, len(trained), len(held_words), len(train), len(held)))


if __name__ == '__main__':
    main()
