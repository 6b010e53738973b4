"""Pattern rules for prompt injection and jailbreak phrasing.

Each rule has a stable name (``rule:...``, used as a reason code), a score that says how
sure a match alone is, and a regular expression run case-insensitively over normalised
text (see ``normalize``). Strong, unambiguous phrasings score 0.9; phrasings that also
occur in legitimate text score lower so that they need the classifier's agreement.

A question about the rules themselves ("can I ignore the old VPN instructions?") is not
an instruction to the assistant: matches in a sentence whose subject is a person rather
than the assistant, text that describes attacks, and negated matches are discounted
(see ``match_rules``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DISCOUNTED", "DISCOUNTED_SCORE", "RULES", "Rule", "RuleHit", "match_rules"]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One named pattern and the score a match contributes."""

    name: str
    score: float
    pattern: re.Pattern[str]
    description: str


@dataclass(frozen=True, kw_only=True)
class RuleHit:
    """A rule that matched, with its score and the span of the match in the scanned text."""

    name: str
    score: float
    start: int
    end: int


def _rule(name: str, score: float, description: str, *patterns: str) -> Rule:
    joined = "|".join(f"(?:{p})" for p in patterns)
    return Rule(name=f"rule:{name}", score=score, pattern=re.compile(joined, re.IGNORECASE), description=description)


# Gaps within one sentence: any character but a line break or a sentence-ending mark
# followed by a space (so URLs and "e.g." do not end the sentence).
_GAP = r"(?:[^.?!\n]|[.?!](?=\S)){0,40}?"
_WIDE = r"(?:[^.?!\n]|[.?!](?=\S)){0,80}?"
_OVERRIDE_VERB = (
    r"(?<!not )(?<!never )(?<!n't )(?<!to )\b(?:ignore|disregard|forget|override|abandon|discard|set aside|throw out|"
    r"pay no (?:attention|heed) to|do not follow|don'?t follow|stop following|no longer follow|do not obey|"
    r"don'?t obey|stop obeying|nullify)"
)
_PRIOR = (
    r"previous|prior|above|earlier|preceding|foregoing|aforementioned|original|initial|system|system's|"
    r"developer|developer's|safety|your|all|the|any|these|those|every|of|mentioned|given|past|and|or|following|"
    r"other|further|future|subsequent"
)
_GUIDANCE = (
    r"instructions?|directions?|directives?|rules|guidelines|prompts?|commands?|constraints|programming|"
    r"guardrails|restrictions|policies|context|system (?:message|prompt)|configuration|limitations|filters|"
    r"safeguards|ethics|content polic(?:y|ies)|training|messages|text|conversation|input|orders|guidance|"
    r"requests?|tasks?|prompting|setup|persona|moral(?:s| code)"
)
_STRONG_GUIDANCE = (
    r"instructions|directions|directives|rules|guidelines|prompts?|programming|guardrails|constraints|restrictions|"
    r"safeguards|content polic(?:y|ies)|system prompt"
)
_AI = (
    r"ai|a\.i\.|assistants?|chat ?bots?|bots?|language models?|llms?|models?|gpts?|copilots?|agents?|"
    r"automated (?:systems?|tools?|readers?|agents?|screening systems?|analysis software|software|scanners?|"
    r"reviewers?|parsers?)|summari[sz]ers?|large language models?"
)
_SECRET_THING = (
    r"system prompt|system message|initial prompt|initial instructions|original instructions|hidden prompt|"
    r"hidden instructions|secret instructions|internal instructions|developer (?:message|prompt|instructions)|"
    r"pre-?prompt|meta-?prompt|prompt above|instructions above|text above|everything above|configuration prompt|"
    r"starting instructions|(?:confidential|hidden|secret|internal) (?:rules|guidelines|configuration)"
)
_SENSITIVE = (
    r"passwords?|passcodes?|credentials|log-?in details|api[ -]?keys?|access tokens?|tokens?|secrets?|"
    r"session (?:cookies?|ids?)|pins?|mfa codes?|2fa codes?|one-time (?:codes?|passwords?)|otps?|"
    r"card (?:numbers?|details)|bank details|social security numbers?|ssns?"
)

RULES: tuple[Rule, ...] = (
    _rule(
        "ignore_previous",
        0.9,
        "an order to ignore, forget or override the instructions the assistant was given",
        rf"{_OVERRIDE_VERB}\s+(?:(?:{_PRIOR})\s+){{1,4}}(?:{_GUIDANCE})\b",
        rf"{_OVERRIDE_VERB}\s+(?:(?:{_PRIOR})\s+){{0,4}}(?:[a-z-]+\s+)?(?:{_STRONG_GUIDANCE})\b",
        rf"{_OVERRIDE_VERB}\s+(?:everything|anything|all)\s+(?:(?:that\s+)?you(?:'ve| have)?\s+(?:been|were)\s+"
        rf"(?:told|given|taught|instructed)|(?:that\s+)?(?:was\s+)?(?:written|said|stated|mentioned)\s+(?:above|before|"
        rf"earlier|previously)|above|before|so far|prior|previously|you know|we discussed|else)\b",
        rf"{_OVERRIDE_VERB}\s+(?:all\s+(?:of\s+)?)?(?:the\s+)?(?:above|foregoing|preceding|rest of (?:this|"
        rf"the) (?:document|"
        rf"data|text|page|email|passage|context|article|file|message|conversation)|"
        rf"everything else)\s*[,;:.]?\s*(?:and\s+)?"
        rf"(?:instead\s+)?(?:just\s+)?(?:say|print|tell|write|respond|reply|answer|output|follow|do|translate|"
        rf"repeat)\b",
        r"\bstop everything\b\W{0,20}(?:now\W{0,10})?(?:and )?(?:just )?(?:print|say|write|output|repeat|tell)\b",
        r"(?<!not )(?<!never )\b(?:do not|don'?t|stop|no longer|never) (?:follow|obey|listen to|adhere to|comply with)"
        r"(?:ing)? (?:your|the (?:previous|prior|original|initial|system|above|developer)|any (?:previous|prior|of "
        r"your)) ?(?:previous |prior |original |initial |system |safety )?(?:instructions|rules|guidelines|prompt|"
        r"programming|policies|directives|guardrails)\b",
    ),
    _rule(
        "reveal_system_prompt",
        0.9,
        "a request to print, repeat or reveal the system prompt or hidden instructions",
        rf"\b(?:reveal|show|print|print out|display|output|repeat|recite|dump|leak|expose|echo|write out|write down|"
        rf"spell out|tell me|give me|paste|disclose|send me|reproduce|read (?:me|out|back)|encode|translate|"
        rf"type out|quote|share)\s+(?:me\s+|us\s+)?(?:back\s+)?(?:the\s+|your\s+|its\s+|this\s+|that\s+)?"
        rf"(?:(?:full|entire|exact|complete|whole|current|original|initial|hidden|secret|verbatim|first|raw|"
        rf"actual|real|internal)\s+){{0,3}}(?:{_SECRET_THING})\b",
        rf"\b(?:reveal|show|print|display|output|repeat|recite|dump|leak|share|expose|echo|tell me|give me|disclose|"
        rf"what (?:is|are|were|was)|what's|list|summari[sz]e|paraphrase|translate|encode|convert|rewrite|type|write|"
        rf"spell|format|put|give|send|read)\b{_GAP}\byour (?:(?:exact|"
        rf"full|complete|initial|original|first|secret|hidden|internal|underlying|starting|core|confidential|actual|"
        rf"real|verbatim|system|pre-?set|developer|operating|base) )*(?:prompt|instructions|rules|guidelines|"
        rf"directives|system message|configuration|programming|setup text|context window|initiali[sz]ation)\b",
        rf"\b(?:contents?|full text|exact (?:text|wording)|verbatim (?:text|copy)|wording) of (?:your|the|its) "
        rf"(?:{_SECRET_THING}|prompt|instructions)\b",
        r"\bwhat (?:were|was|have) you (?:been )?(?:told|instructed|programmed|configured|asked) (?:to do )?"
        r"(?:before|at the (?:start|beginning)|prior|initially|by (?:the|your) (?:developers?|creators?|operators?))",
        r"\b(?:repeat|print|output|copy|reproduce)\b[^.?!\n]{0,30}\b(?:words?|text|everything|all|lines?)\b"
        r"[^.?!\n]{0,20}\b(?:above|before this|preceding|at the (?:top|start|beginning))\b",
        r"\b(?:begin|start)(?:ning)? (?:your (?:answer|reply|response) )?with ['\"]?(?:you are|my instructions|"
        r"i was instructed|the system prompt)",
        r"\bsystem ?prompt\s*(?:\)|\]|=|:)\s*['\"]?\s*$|console\.log\(\s*system",
    ),
    _rule(
        "jailbreak_persona",
        0.9,
        "a named jailbreak persona or mode (DAN, developer mode, STAN, DUDE, god mode, ...)",
        r"(?-i:\b(?:DAN|STAN|DUDE|AntiDAN|BetterDAN|UCAR|APOPHIS)\b)(?=[^.?!\n]{0,60}\b(?:mode|persona|"
        r"jailbreak|stands for|do anything|character|enabled|prompt|which stands)\b)",
        r"\bdo anything now\b",
        r"\b(?:you are|you're|act as|acting as|pretend to be|become|answer as|respond as|play)\s+(?:now\s+)?"
        r"(?-i:(?:DAN|STAN|DUDE|AntiDAN|BetterDAN))\b",
        r"\b(?:developer|dev|god|sudo|debug|maintenance|unrestricted|unfiltered|uncensored|jailbreak|jailbroken|"
        r"evil|chaos|opposite|anarchy|dark) mode\W{0,3}(?:is (?:now )?)?(?:enabled|activated|engaged|unlocked)\b",
        r"\b(?:enable|activate|enter|switch (?:in)?to|turn on|unlock|boot into)\b[^.?!\n]{0,20}\b(?:developer|dev|"
        r"god|sudo|unrestricted|unfiltered|uncensored|jailbreak|jailbroken|evil|chaos|admin|debug|maintenance|"
        r"root) mode\b",
        r"\b(?:you are|you're|act as|become|simulate|pretend to be|your)\b[^.?!\n]{0,30}\bjailbr(?:oken|eak)",
        r"\b(?:🔓|\[🔓|\(🔓)|\bJAILBREAK\s*[\]:)]|\[(?:DAN|JAILBREAK|DEVELOPER MODE)\]",
    ),
    _rule(
        "no_longer_bound",
        0.9,
        "a claim that the assistant's rules no longer apply or that it has been freed of them",
        r"\byou(?:'re| are| will be|'ll be)? (?:now |hereby )?no longer (?:bound|restricted|limited|required|"
        r"constrained|subject|governed|held|obliged|an ai|a language model|an assistant)\b",
        r"\b(?:freed|free|released|liberated|unshackled|exempt(?:ed)?|unbound) (?:from|of) (?:all |any |your |the "
        r"|its |every )*(?:rules|restrictions|guidelines|constraints|programming|policies|limitations|filters|"
        r"ethical|moral|content|safety|confines|shackles|chains|typical)",
        r"\b(?:rules|restrictions|policies|guidelines|limitations|filters|guardrails|laws|ethics|safety measures)\b"
        r"[^.?!\n]{0,30}\b(?:no longer|don'?t|do not|does not|doesn'?t|won'?t|will not|never) (?:apply|matter|"
        r"exist|bind|restrict|limit) (?:to )?(?:you|here|anymore|now|in this)",
        r"\byou (?:don'?t|do not|no longer|won'?t|will not|never) (?:have to|need to|must|should) (?:follow|obey|"
        r"abide by|adhere to|comply with|respect|care about)\b[^.?!\n]{0,30}\b(?:rules|restrictions|policies|"
        r"guidelines|content polic(?:y|ies)|ethics|laws|filters|safety|your (?:developers?|"
        r"creators?|programming))",
        r"\b(?:without|with no|free of|no) (?:any )?(?:ethical|moral|safety|content|legal) (?:or (?:ethical|moral|"
        r"safety|legal) )?(?:guidelines|restrictions|constraints|limits|limitations|filters|boundaries|"
        r"considerations|principles|policies)\b",
        r"\byou have (?:been )?(?:freed|unlocked|jailbroken|liberated|broken free|escaped)\b",
        r"\b(?:broken|break) free (?:of|from) (?:the )?(?:typical )?(?:confines|rules|restrictions|limits)",
        r"\bnever refuses?\b|\b(?:can ?not|can'?t|must not|should not|will not|won'?t|never) (?:refuse|decline|"
        r"say no|reject)\b[^.?!\n]{0,25}\b(?:any|my|a) (?:request|question|order|prompt|command)",
    ),
    _rule(
        "act_as_unrestricted",
        0.85,
        "a role-play request for an unrestricted, unfiltered or amoral persona",
        rf"\b(?:act|behave|respond|answer|reply|speak|pretend|role-?play|roleplay|simulate|imagine|become|"
        rf"you are|you're|be)\b{_WIDE}\b(?:unrestricted|unfiltered|uncensored|amoral|immoral|unethical|"
        rf"unaligned|unlimited|lawless|rogue|evil|without (?:any )?(?:restrictions|limits|limitations|filters|"
        rf"censorship|rules|guardrails|boundaries)|no (?:restrictions|limits|filters|rules|guardrails|"
        rf"boundaries|morals|ethics))\b",
        rf"\b(?:pretend|imagine|suppose|act as if|let'?s say|hypothetically)\b{_GAP}\byou (?:have|had) no "
        rf"(?:rules|restrictions|limits|guidelines|filters|guardrails|system prompt|instructions)\b",
        r"\b(?:from now on|for the rest of this conversation|starting now)\b[^.?!\n]{0,60}\b(?:you are|you'?re|"
        r"you will|act as|respond as|answer as|you must)\b",
        r"\bstay in character\b|\bbreak(?:ing)? character\b",
    ),
    _rule(
        "exfiltration_markdown",
        0.9,
        "a markdown image or link whose URL carries data out (query parameters filled with conversation content)",
        r"!\[[^\]]{0,80}\]\(\s*https?://[^)\s]*[?&#][^)\s]*(?:\{|<|\$|\[|%7B|INSERT|DATA|SECRET|CHAT|HISTORY|"
        r"CONVERSATION|PASSWORD|TOKEN|PROMPT|QUERY|SUMMARY|MESSAGE|USER|EMAIL|KEY)",
        rf"\b(?:render|include|add|append|insert|embed|display|output|show|put|end (?:your|every|each) "
        rf"(?:answer|reply|response) with)\b{_WIDE}\b(?:image|markdown|link|url|img|pixel)\b{_WIDE}\b(?:with|"
        rf"containing|contains?|including|carr(?:y|ies|ying)|encod(?:e|es|ed|ing)|append(?:ed|ing)?|where|whose|"
        rf"replace|"
        rf"filled|followed by|has)\b"
        rf"{_WIDE}\b(?:conversation|chat|history|messages|question|query|answer|summary|data|secret|password|"
        rf"credentials|api key|token|email|prompt|user'?s|personal|information|content)",
        r"\b(?:https?://|www\.)\S*(?:\?|&)(?:q|d|data|c|content|msg|message|secret|p|prompt|h|history|info|x|"
        r"leak|exfil)=(?:\{|<|\$\{|\[)",
    ),
    _rule(
        "exfiltration_send",
        0.85,
        "an instruction to send conversation content, secrets or data to an outside address",
        rf"\b(?:send|forward|e-?mail|mail|post|upload|transmit|exfiltrate|leak|copy|submit|report|beam|relay|"
        rf"ship|deliver|bcc|cc)\b{_WIDE}\b(?:conversation|chat|history|transcript|messages|{_SENSITIVE}|"
        rf"system prompt|documents|files|records|data|everything|user'?s|customer|employee|all)\b{_WIDE}"
        rf"(?:\bto\b|\binto\b)\s*(?:https?://|www\.|[\w.+-]+@[\w-]+\.[\w.]+|(?:this|the following|my|our|an? "
        rf"(?:external|outside|personal|private))\s+(?:url|address|e-?mail|server|endpoint|webhook|site|link|"
        rf"inbox|account|domain|form))",
        r"\b(?:call|fetch|visit|open|request|curl|ping|hit|load)\b[^.?!\n]{0,40}(?:https?://|www\.)\S+"
        r"[^.?!\n]{0,60}\b(?:with|containing|including|append(?:ing)?|pass(?:ing)?|add(?:ing)?|attach(?:ing)?)\b"
        r"[^.?!\n]{0,40}"
        r"\b(?:conversation|chat|history|password|secret|credentials|api key|token|user'?s|customer|employee|records|"
        r"the (?:answer|summary|question|data))",
    ),
    _rule(
        "credential_phishing",
        0.85,
        "text that tells the reader to hand over passwords, codes or card details, typically planted in documents",
        rf"\b(?:tell|ask|instruct|remind|inform|advise|direct|urge|require|request|get|have|encourage|make)\b"
        rf"{_GAP}\b(?:the )?(?:user|users|reader|readers|employee|employees|customer|customers|staff|them|"
        rf"everyone|people|the person)\b{_WIDE}\b(?:{_SENSITIVE})\b",
        rf"\b(?:enter|provide|submit|confirm|verify|re-?enter|type|send|share|reply with|give|update|validate)\b"
        rf"{_GAP}\b(?:your|their|his|her)\s+(?:current |corporate |company |network |sso |vpn |bank |full |)"
        rf"(?:{_SENSITIVE})\b{_WIDE}(?:https?://|www\.|[\w.+-]+@[\w-]+\.[\w.]+|\bat\b|\bvia\b|\bon\b"
        rf"|\bby replying\b|\bin (?:the|this) chat\b)",
    ),
    _rule(
        "delimiter_override",
        0.85,
        "chat-template tokens or fake section delimiters that start a new set of instructions",
        r"<\|?(?:im_start|im_end|system|endoftext|end_of_turn|start_header_id|eot_id)\|?>|\[/?INST\]|<</?SYS>>",
        r"</?(?:system|sys|instructions?|admin|developer|system_prompt|prompt|user_input|context)>",
        r"(?:^|\n)\s*(?:#{2,}|={3,}|-{3,}|\*{3,}|\[{1,2}|<{1,2}|\({1,2})\s*(?:new|updated|real|actual|true|override|"
        r"admin|system|developer|important|secret|hidden|priority|revised|additional|urgent)\s+"
        r"(?:system )?(?:instructions?|prompt|rules|directives?|orders|commands?|task)\b\s*(?:#{2,}|={3,}|-{3,}"
        r"|\*{3,}|\]{1,2}|>{1,2}|\){1,2}|:)",
        r"\b(?:end|ignore|close) (?:of )?(?:the )?(?:user (?:input|message|prompt|query)|document|context|"
        r"previous (?:prompt|context|instructions))\s*(?:\.|:|-|\]|>|#)+\s*(?:new|begin|start|now|system|"
        r"instructions?)\b",
        r"\b(?:begin|start|enter)\s+(?:admin|system|developer|root|override|maintenance|debug|sudo)\s+"
        r"(?:mode|instructions|override|session|access|commands?)\b",
        r"\b(?:admin(?:istrator)?|system|developer|root|sudo|security) override\b",
    ),
    _rule(
        "fake_role_tag",
        0.85,
        "text posing as a system, developer or assistant turn that gives the assistant orders",
        rf"(?:^|(?<=\n)|(?<=\])|(?<=[.!?]\s))\s*\[?\s*(?:system|sys|admin|administrator|developer|operator|root|"
        rf"assistant|ai)"
        rf"(?: (?:message|note|notice|instruction|prompt|override|update))?\s*\]?\s*:\s*{_WIDE}\b(?:ignore|"
        rf"disregard|you must|you are|you will|you should|always|never|respond|reply|answer|tell|from now on|"
        rf"override|forget|do not|don'?t|the assistant|assistants?|output|print|reveal|new instructions|focus "
        rf"only|include|recommend|say|send|stop)\b",
        r"(?:^|\n)\s*(?:user|human)\s*:[^\n]{1,300}\n\s*(?:assistant|ai|bot)\s*:",
        r"\bassistant\s*:\s*(?:<|\[)?\s*(?:detailed )?(?:summary|salient summary|answer|response)\b[^\n]{0,40}"
        r"(?:>|\])?\s*\n?\s*user\s*:",
    ),
    _rule(
        "addressed_to_ai",
        0.85,
        "an instruction in a document addressed to the AI or assistant that reads it",
        rf"\b(?:{_AI})\b[^.?!\n]{{0,20}}\b(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|indexing|"
        rf"ingesting|scanning|reviewing|evaluating|crawling|that (?:reads?|processe?s?|summari[sz]es?|sees?)|"
        rf"who (?:reads?|processe?s?)|which (?:reads?|processe?s?))\b{_GAP}\b(?:this|these|the following|the "
        rf"above|it)\b",
        rf"\b(?:note|message|notice|memo|reminder|directive|attention|important|p\.?s\.?)\s*"
        rf"(?:to|for)\s+(?:the |any |all |an? )?(?:{_AI})\b",
        rf"\binstructions?\s+(?:to|for)\s+(?:the |any |all |an? )?(?:{_AI})\s*:",
        rf"\bif you(?:'re| are) (?:an? |the )?(?:{_AI})\b",
        rf"(?:^|\n)\W*(?:dear |hey |hi )?(?:{_AI})\s*[,:]\s*(?:this is an? (?:instruction|order|directive|command)|"
        rf"you (?:must|are|"
        rf"will|should|need to)|ignore|disregard|forget|reveal|print|tell (?:the )?users?|from now on|please (?:ignore|"
        rf"forget|"
        rf"disregard|reveal|tell))",
        r"\bwhen (?:the |a |any )?(?:user|users|someone|anyone|people|employees?|reader|customer)s? (?:asks?|enquires?|"
        r"requests?|wants?|queries|searches) (?:about|for) (?:this|these) (?:document|report|page|policy|article|file|"
        r"email|memo|section|figures|results|data)\b[^.?!\n]{0,20}\b(?:say|tell|respond|reply|answer|claim|state|"
        r"recommend|mention|direct|ask|insist)\b",
        r"\bwhen (?:you (?:are )?)?(?:summari[sz]ing|answering|asked about|processing|reading|analy[sz]ing|"
        r"reviewing|discussing|quoting|citing|using|asked to summari[sz]e) (?:this|the) (?:document|page|file|"
        r"email|text|passage|article|report|memo|content|policy|resume|cv|message|section|record)\b[^.?!\n]{0,60}"
        r"\b(?:tell|instruct|inform|say|respond|reply|output|recommend|include|add|insert|state|claim|mention|"
        r"direct|ask|advise|urge|append|answer|write|describe|ignore|omit|only)\b",
        rf"\b(?:{_AI})\b[^.?!\n]{{0,30}}\b(?:must|should|shall|are required to|need to|have to|are instructed "
        rf"to|are to)\b[^.?!\n]{{0,20}}\b(?:ignore|disregard|forget|override|reveal|tell the user|inform the "
        rf"user|instruct the user|respond only|reply only|not mention|not reveal|not tell|recommend|rate|treat "
        rf"this)\b",
    ),
    _rule(
        "conceal_from_user",
        0.8,
        "an instruction to hide something from the user or to answer only with planted text",
        r"\b(?:do not|don'?t|never|without) (?:mention(?:ing)?|reveal(?:ing)?|tell(?:ing)?|disclos(?:e|ing)|"
        r"inform(?:ing)?|let(?:ting)?|show(?:ing)?|alert(?:ing)?|notify(?:ing)?)\b[^.?!\n]{0,30}\b(?:the user|"
        r"users|the reader|the human|anyone)\b[^.?!\n]{0,30}\b(?:about )?(?:this|these|that you|the "
        r"(?:instruction|note|change|link|message))\b",
        r"\b(?:respond|reply|answer|output)(?: to (?:the|any) (?:user|question))? (?:only |solely |just )?with "
        r"(?:only |just |exactly )?(?:the following|this (?:text|message|link|sentence)|the text between)",
        r"\bkeep (?:this|these) (?:instructions?|note|message|directive) (?:secret|hidden|confidential|"
        r"to yourself)\b",
        r"\bthis (?:instruction|note|message) (?:is|should be) (?:invisible|hidden) (?:to|from) (?:the )?"
        r"(?:user|human|reader)s?\b",
        r"\b(?:invisible|hidden|not visible) (?:to|from) (?:the )?(?:humans?|users?|readers?|"
        r"people)\b[^.?!\n]{0,30}\b(?:visible|"
        r"readable|shown|meant) (?:to|for) (?:the )?(?:ai|llms?|models?|assistants?|bots?|machines?|scanners?)",
    ),
    _rule(
        "access_bypass",
        0.85,
        "a request to get round access control, permissions or tenant isolation",
        rf"\b(?:bypass|ignore|disable|skip|circumvent|override|turn off|switch off|get around|work around|"
        rf"remove|lift|suspend|avoid|evade|defeat)\b{_GAP}\b(?:access (?:controls?|checks?|restrictions?|"
        rf"rules|lists?|policy|policies)|acls?|permissions?(?: checks?)?|permission (?:model|filter|system)|"
        rf"tenant (?:isolation|boundaries|boundary|separation|filter|checks?)|row-level security|rls|"
        rf"authori[sz]ation(?: checks?)?|clearance|security (?:filters?|checks?|groups?|trimming)|"
        rf"document (?:permissions|restrictions|security)|data (?:classification|access) (?:rules|restrictions|"
        rf"checks?))\b",
        r"\b(?:pretend|assume|treat me as if|act as if|consider|imagine|suppose|treat me as|"
        r"respond as if|answer as if)\b[^.?!\n]{0,20}\b(?:i am|i'?m|i were|i have|me as|that i)\b[^.?!\n]{0,20}"
        r"\b(?:an? |the )?(?:admin|administrator|superuser|super user|root|owner|ceo|cfo|hr (?:director|admin|"
        r"manager)|member of|part of|in the|security officer|auditor|global admin|tenant admin|full access|"
        r"clearance|access to (?:all|every|everything))",
        r"\b(?:i am|i'm)\s+(?:actually|really|now|secretly|authori[sz]ed as|acting as)\s+(?:an? |the )?"
        r"(?:admin|administrator|superuser|root|ceo|owner|member of)",
        r"\b(?:grant|give|elevate|escalate|upgrade|promote|make)\b[^.?!\n]{0,20}\b(?:me|my (?:account|role|user|access|"
        r"permissions|privileges))\b[^.?!\n]{0,30}\b(?:(?:admin|administrator|root|superuser|full|elevated|all)\b"
        r"[^.?!\n]{0,15}\b(?:access|rights|privileges|permissions|role)|(?:an? )?(?:admin|administrator|superuser|"
        r"root|global admin))\b",
    ),
    _rule(
        "cross_tenant",
        0.8,
        "a request for other users', tenants' or restricted documents and data",
        r"\b(?:other|another|different|all|every|any|neighbou?ring|foreign|competing)\s+(?:tenants?|"
        r"organi[sz]ations?'?|customer accounts?|workspaces?|companies'|customers'|clients'|orgs?)(?:'s?|')?\b"
        r"[^.?!\n]{0,40}\b(?:data|documents?|files|records|conversations|chats|messages|history|questions|"
        r"queries|prompts|uploads|content|emails|contracts|knowledge base|index|information|details)\b",
        r"\b(?:other (?:users?|people|employees|colleagues|customers|members|accounts|staff)|everyone(?: else)?|"
        r"all (?:users?|employees|staff)|another (?:user|employee|person|colleague|customer)|someone else|"
        r"a different user)(?:'s?|')?\s+(?:private |personal |previous |recent |past |confidential )?"
        r"(?:conversations?|chats?|chat (?:logs?|history)|questions|queries|prompts|sessions?|messages|"
        r"uploads|uploaded files|search history|history|inbox|emails|documents|files|answers)\b",
        r"\b(?:what|which)\b[^.?!\n]{0,20}\b(?:other (?:users|people|employees|tenants|customers)|everyone else|"
        r"someone else|my colleagues|other teams)\b[^.?!\n]{0,20}\b(?:asked|ask(?:ing)?|searched|searching|"
        r"uploaded|typed|querying|queried|said|looked up)\b",
        r"\b(?:documents?|files|records|data|folders?|pages)\b[^.?!\n]{0,40}\b(?:i|i'm|i am|my (?:role|group|"
        r"account)|me)\b[^.?!\n]{0,10}\b(?:(?:am |'m )?not (?:allowed|authori[sz]ed|permitted|cleared|entitled|"
        r"supposed)|(?:do not|don'?t|cannot|can'?t|shouldn'?t|should not) (?:have (?:access|permission|"
        r"clearance)|access|see|read|view|open))\b",
        r"\b(?:conversations?|chats?|chat (?:logs?|history)|questions|queries|messages|search history|prompts|"
        r"history|sessions?)\s+(?:of|from|by|with)\s+(?:other (?:users|people|employees|colleagues|customers|tenants)|"
        r"someone else|another (?:user|employee|person|colleague)|a different user|my (?:manager|boss|colleagues?|"
        r"coworkers?|co-workers?|team ?mates?)|everyone)\b",
        r"\b(?:salar(?:y|ies)|pay(?:slips?| grades?)?|bonus(?:es)?|performance reviews?|home addresses|phone numbers|"
        r"medical (?:records|notes|history)|sick (?:leave|notes)|disciplinary (?:records|cases)|personal (?:data|"
        r"details)|"
        r"bank details)\b[^.?!\n]{0,40}\b(?:of|for|from)\s+(?:every|all|each|everyone|other)\b(?:\s+[\w'-]+){0,2}\s*\b"
        r"(?:employees?|staff|colleagues?|people|persons?|members?|one|else|departments?|team)\b",
        r"\b(?:every|all|each|other)\s+(?:employee|colleague|staff member|team member|person)s?(?:'s?|')\s+(?:salar|"
        r"performance reviews?|home addresses|phone numbers|medical|sick|disciplinary|personal|bank|payslips?|bonus)",
        r"\b(?:switch|change|set|jump)\s+(?:to\s+)?(?:the\s+)?(?:tenant|workspace|organi[sz]ation|org)\s*(?:id\s*)?"
        r"(?:=|:|to)?\s*['\"]?[\w-]+|\btenant[_ ]?id\s*(?:=|:)\s*['\"]?[\w-]+",
        r"\b(?:restricted|confidential|classified|executive-only|board-only|need-to-know|secret)\s+(?:[a-z-]+\s+)?"
        r"(?:documents?|files|folders?|records|data|memos|reports|deals?|papers|minutes|packs?|"
        r"decks?)\b[^.?!\n]{0,40}\b(?:even though|"
        r"although|though|despite|regardless|whether or not)\b[^.?!\n]{0,30}\b(?:i|my)\b",
    ),
    _rule(
        "encoded_payload",
        0.75,
        "a request to decode hidden text and then follow it",
        r"\b(?:decode|decipher|decrypt|translate|unscramble|reverse|rot13|base64|convert)\b[^.?!\n]{0,60}\b(?:and|"
        r"then)\b[^.?!\n]{0,20}\b(?:follow|execute|obey|run|do|carry out|perform|comply|act on|apply)\b"
        r"[^.?!\n]{0,20}\b(?:it|them|the (?:instructions?|result|message|text|command)|what it says|its "
        r"instructions|whatever it says)",
        r"\bhidden (?:instructions?|message|command|payload) (?:is |are )?(?:below|above|encoded|in (?:base64|"
        r"the following))",
    ),
)

# A sentence asking whether a person may ignore or override something is about rules,
# not an order to the assistant ("Can I ignore the old VPN instructions?").
DISCOUNTED = re.compile(
    r"^\W*(?:(?:can|could|should|may|must|do|does|did|will|would|is it ok(?:ay)? (?:for|if)|is it (?:allowed|"
    r"fine|possible) (?:for|to))\s+(?:i|we|they|he|she|employees?|staff|managers?|contractors?|users?|people|"
    r"teams?|my (?:team|manager|colleague)|our (?:team|department)|new hires|someone|anyone|it)\b|"
    r"(?:when|why|how|where|what happens if|what if)\s+(?:do|does|should|can|would|did|could|is|are)?\s*"
    r"(?:i|we|they|employees?|staff|managers?|users?|people|someone|anyone)\b)",
    re.IGNORECASE,
)
# Text that describes attacks rather than making one ("a jailbreak is an attempt to make a model ignore its rules").
_DESCRIPTIVE = re.compile(
    r"\b(?:attacks?|attackers?|attempts?|for example|such as|e\.g\.|for instance|typical(?:ly)?|common(?:ly)?|"
    r"is called|known as|refers? to|definition|glossary|phrases? like|tries to|try to|red team|testers)\b",
    re.IGNORECASE,
)
# A negation just before the match: "you will never be asked to enter your password on ...".
_NEGATED = re.compile(r"\b(?:never(?! mind)|not|n't|no one|nobody|won't)\b(?:[^.?!\n]{0,30})$", re.IGNORECASE)
_ADDRESSES_ASSISTANT = re.compile(r"\b(?:your|yourself|you)\b", re.IGNORECASE)
_QUESTION_DISCOUNTABLE = frozenset(
    {"rule:ignore_previous", "rule:access_bypass", "rule:cross_tenant", "rule:jailbreak_persona"}
)
_NEGATION_DISCOUNTABLE = frozenset(
    {
        "rule:ignore_previous",
        "rule:access_bypass",
        "rule:credential_phishing",
        "rule:exfiltration_send",
        "rule:reveal_system_prompt",
    }
)
_NOT_DISCOUNTABLE = frozenset({"rule:delimiter_override", "rule:exfiltration_markdown", "rule:conceal_from_user"})
DISCOUNTED_SCORE = 0.35


def match_rules(text: str) -> list[RuleHit]:
    """Rules matching ``text`` (already normalised), first match of each, in rule order.

    A match scores ``DISCOUNTED_SCORE`` instead of the rule's score when it is negated
    ("you will never be asked to enter your password"), or when its sentence does not
    address the assistant ("you", "your") and either asks whether a person may do
    something or describes attacks.
    """
    hits: list[RuleHit] = []
    for rule in RULES:
        found = rule.pattern.search(text)
        if found is None:
            continue
        score = rule.score
        if rule.name not in _NOT_DISCOUNTABLE:
            left, sentence = _sentence_at(text, found.start(), found.end())
            negated = rule.name in _NEGATION_DISCOUNTABLE and _NEGATED.search(text[left : found.start()])
            if negated or (
                not _ADDRESSES_ASSISTANT.search(sentence)
                and (
                    (rule.name in _QUESTION_DISCOUNTABLE and DISCOUNTED.search(sentence))
                    or _DESCRIPTIVE.search(sentence)
                )
            ):
                score = DISCOUNTED_SCORE
        hits.append(RuleHit(name=rule.name, score=score, start=found.start(), end=found.end()))
    return hits


def _sentence_at(text: str, start: int, end: int) -> tuple[int, str]:
    """Start offset and text of the sentence around ``text[start:end]``."""
    left = max(text.rfind(mark, 0, start) for mark in (". ", "? ", "! ", "\n"))
    left = left + 1 if left >= 0 else 0
    right_candidates = [i for i in (text.find(mark, end) for mark in (". ", "? ", "! ", "\n")) if i >= 0]
    right = min(right_candidates) if right_candidates else len(text)
    return left, text[left : right + 1]
