Feature: Local store
  A node keeps its state (trust, tokens, onboarding, deployments) in an
  embedded ACID store under its home. What a command reported done is still
  there after a restart, and after kill -9 at any moment.

  Background:
    Given the node alice is running
    And dave has a home

  Scenario: Trust survives a restart
    Given alice trusts dave's user for "/dms/node/peers"
    When alice's node restarts
    And alice runs `dms cap list`
    Then the output contains "<dave.user>"

  Scenario: An onboarding the CLI saw succeed survives kill -9
    When alice runs `dms onboard --cpu 1 --ram 300MiB --disk 1GiB`
    Then the command succeeds
    When alice's node is killed with SIGKILL
    And alice's node starts again
    Then alice's node has cpu 1, ram 300MiB and disk 1GiB onboarded

  Scenario: A revocation survives kill -9
    Given alice has granted dave's user "/dms/node/peers" in "peers.tok"
    When alice runs `dms cap revoke peers.tok`
    Then the command succeeds
    When alice's node is killed with SIGKILL
    And alice's node starts again
    And alice runs `dms cap verify --cmd /dms/node/peers/list peers.tok`
    Then it is refused with "denied: revoked"

  Scenario: The state of a stopped node is read from its home
    Given alice trusts dave's user for "/dms/node/peers"
    When alice's node is stopped
    And alice runs `dms cap list`
    Then the command succeeds
    And the output contains "<dave.user>"

  Scenario: Two nodes cannot run on one home
    When alice runs `dms run --listen /ip4/127.0.0.1/tcp/0 --api-listen 127.0.0.1:0`
    Then the command fails with exit code 1
    And the error says "in use"

  Scenario: A finished deployment and its logs survive a restart of its orchestrator
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution:
            module: workload.wasm
            args: [print=kept-across-restarts]
      """
    And the deployment completes within 30 seconds
    When alice's node restarts
    And alice runs `dms -o json deployments`
    Then the output contains "<deployment>"
    When alice runs `dms deployment logs <deployment>`
    Then the output contains "kept-across-restarts"
