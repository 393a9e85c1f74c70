"""The demo's scripted multi-tenant application: plain ``openai`` code, no genai-audit imports
beyond ``audit_context``. ``genai-audit demo`` runs it under ``opentelemetry-instrument``.

Three tenants, several users and tools, prompts with PII and PHI, streaming calls, a
provider error, an unknown model and a call made outside any ``audit_context`` (which
must show up as a control failure, not vanish). Prints ``PROGRESS <done> <total>`` lines
for the parent's progress bar.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import openai
from openai.types.chat import ChatCompletionMessageParam

from genai_audit.instrumentation import audit_context

ENV_LLM_URL = "GENAI_AUDIT_DEMO_LLM_URL"


@dataclass(frozen=True)
class Call:
    tenant: str | None
    user: str | None
    tool: str
    feature: str
    model: str
    prompt: str
    stream: bool = False
    region: str = "us"
    data_class: str = "internal"


SCRIPT: tuple[Call, ...] = (
    Call("acme-health", "dr.rivera@acme-health.example", "health_assistant", "visit_summary",
         "gpt-4o", "Summarize the visit of patient Maria Gonzalez, MRN 00482913, born "
         "03/14/1961, phone (415) 555-0132, who reports chest pain.", data_class="phi"),
    Call("acme-health", "dr.rivera@acme-health.example", "health_assistant", "visit_summary",
         "gpt-4o", "Draft a follow-up note for John Carter about his HbA1c results.",
         stream=True, data_class="phi"),
    Call("acme-health", "nurse.kim@acme-health.example", "health_assistant", "triage",
         "gpt-4o-mini", "Is a fever of 39C urgent for a 4 year old?", data_class="phi"),
    Call("globex-legal", "paralegal.ortiz@globex.example", "contract_review",
         "clause_extraction", "gpt-4.1", "Extract the termination clause from the supplier "
         "agreement signed by Alan Smithee (alan.smithee@supplier.example)."),
    Call("globex-legal", "paralegal.ortiz@globex.example", "contract_review",
         "clause_extraction", "gpt-4.1", "List the payment terms; wire to IBAN "
         "DE89 3704 0044 0532 0130 00.", stream=True),
    Call("globex-legal", "counsel.baker@globex.example", "contract_review", "risk_summary",
         "gpt-4.1-mini", "Summarize liability caps in the MSA with Initech."),
    Call("initech-hr", "emp-1042", "hr_helpdesk", "escalation_triage", "gpt-4o-mini",
         "My SSN is 123-45-6789 and my paycheck is wrong, card 4111 1111 1111 1111.",
         region="eu"),
    Call("initech-hr", "emp-2077", "hr_helpdesk", "policy_qa", "gpt-4o-mini",
         "How many vacation days do I have left this year?", stream=True, region="eu"),
    Call("initech-hr", "emp-2077", "hr_helpdesk", "policy_qa", "initech-finetune-v2",
         "What is the parental leave policy?", region="eu"),
    Call("initech-hr", "emp-1042", "hr_helpdesk", "escalation_triage", "stub-error-429",
         "Escalate my ticket to a human please.", region="eu"),
    Call(None, None, "batch_job", "nightly_summary", "gpt-4o-mini",
         "Summarize yesterday's tickets."),
)


def run(base_url: str, rounds: int) -> int:
    client = openai.OpenAI(base_url=base_url, api_key="sk-demo-not-a-real-key", max_retries=0)
    total, done, failures = rounds * len(SCRIPT), 0, 0
    for _ in range(rounds):
        for call in SCRIPT:
            failures += _one_call(client, call)
            done += 1
            print(f"PROGRESS {done} {total}", flush=True)
    return failures


def _one_call(client: openai.OpenAI, call: Call) -> int:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": f"You are the {call.tool} assistant."},
        {"role": "user", "content": call.prompt}]
    try:
        if call.tenant is None:
            _complete(client, call, messages)
        else:
            with audit_context(tenant_id=call.tenant, user_id=call.user, tool_name=call.tool,
                               feature_name=call.feature, region=call.region,
                               data_class=call.data_class, session_id="demo-session"):
                _complete(client, call, messages)
    except openai.APIStatusError:
        return 1  # expected for the stub-error model: recorded with its status code
    return 0


def _complete(client: openai.OpenAI, call: Call,
              messages: list[ChatCompletionMessageParam]) -> None:
    if call.stream:
        stream = client.chat.completions.create(
            model=call.model, messages=messages, stream=True,
            stream_options={"include_usage": True})
        for _chunk in stream:
            pass
    else:
        client.chat.completions.create(model=call.model, messages=messages)


def main() -> int:
    base_url = os.environ.get(ENV_LLM_URL)
    if not base_url:
        print(f"demo app: {ENV_LLM_URL} is not set", file=sys.stderr)
        return 2
    rounds = int(os.environ.get("GENAI_AUDIT_DEMO_ROUNDS", "1"))
    failures = run(base_url, rounds)
    print(f"DONE {rounds * len(SCRIPT)} {failures}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
