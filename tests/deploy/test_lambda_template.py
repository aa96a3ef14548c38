"""deploy/lambda/template.yaml passes cfn-lint and wires the queue, dead-letter queue and mapping as the Lambda
worker needs; the Dockerfile's lambda target runs the handler through AWS's runtime interface client."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.sqs_job import max_receive_count

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "lambda" / "template.yaml"

cfn_yaml = pytest.importorskip("cfnlint.decode.cfn_yaml", reason="cfn-lint is in requirements-dev.txt")


def lint(path: Path) -> subprocess.CompletedProcess:
    """Run cfn-lint on a template, as CI would."""
    # The console script installed beside this Python (cfn-lint's package has no __main__).
    executable = Path(sys.executable).with_name("cfn-lint")
    return subprocess.run([str(executable), str(path)], capture_output=True, text=True, timeout=300)


def test_the_template_passes_cfn_lint():
    result = lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_refuses_a_function_that_runs_longer_than_lambda_allows(tmp_path):
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("MaxValue: 900", "MaxValue: 901").replace(
        "Timeout: !Ref FunctionTimeout", "Timeout: 901"))
    result = lint(broken)
    assert result.returncode != 0
    assert "901" in result.stdout


def test_the_mapping_reports_batch_item_failures_from_a_fifo_queue_with_a_dead_letter_queue():
    template = cfn_yaml.load(str(TEMPLATE))
    resources, parameters = template["Resources"], template["Parameters"]
    mapping = resources["TaskQueueMapping"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["TaskQueue", "Arn"]}
    queue = resources["TaskQueue"]["Properties"]
    assert queue["FifoQueue"] is True and resources["DeadLetterQueue"]["Properties"]["FifoQueue"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    # The attempts RQ allows (the first and STUDIO_JOB_RETRIES more), and one delivery more for a worker to fail
    # the task whose last attempt's worker died (jobs.sqs_job.max_receive_count).
    assert parameters["MaxReceiveCount"]["Default"] == max_receive_count(
        {"STUDIO_JOB_RETRIES": parameters["JobRetries"]["Default"]})
    # AWS's advice: the queue hides a message at least six times as long as the function may run.
    assert queue["VisibilityTimeout"] >= 6 * parameters["FunctionTimeout"]["Default"]
    # A record starts only with the job's timeout and the handler's margin (10 s) still left.
    assert parameters["FunctionTimeout"]["Default"] > parameters["JobTimeout"]["Default"] + 10
    function = resources["WorkerFunction"]["Properties"]
    assert function["PackageType"] == "Image"
    assert function["Environment"]["Variables"]["STUDIO_QUEUE_BACKEND"] == "sqs"


def test_the_dockerfile_lambda_target_runs_the_handler_with_the_runtime_interface_client():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = dockerfile.split("AS lambda", 1)[1].split("\nFROM ", 1)[0]
    assert 'ENTRYPOINT ["python", "-m", "awslambdaric"]' in stage
    handler = re.search(r'CMD \["([\w.]+)"\]', stage).group(1)
    module, _, function = handler.rpartition(".")
    assert (ROOT / (module.replace(".", "/") + ".py")).read_text().count(f"def {function}(") == 1
    assert "STUDIO_INSTANCE_DIR=/tmp/" in stage
    assert re.search(r"^awslambdaric==[\d.]+$", (ROOT / "requirements.txt").read_text(), re.M)
    # The default image stays the last stage: a plain `docker build` builds the web and worker image.
    assert dockerfile.rstrip().splitlines()[-1].startswith("CMD [\"gunicorn\"")
