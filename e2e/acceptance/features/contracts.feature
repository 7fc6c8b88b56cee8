Feature: Contracts
  Every placement runs under a contract between the orchestrating node
  (the requester) and the provider, both signed. While the work runs, the
  provider meters it and signs a cumulative note every interval; the
  requester checks and countersigns it, and both nodes' ledgers settle the
  countersigned amounts. Anyone holding the chain can verify it offline
  (docs/contracts.md).

  Background:
    Given bob offers 1 CPU to alice's deployments
    And bob charges "cpu=2,ram=0.1" per hour

  Scenario: A deployment runs under a contract whose notes are countersigned
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [spin=30s]}
      contract:
        interval: 1s
      """
    Then within 30 seconds alice's contract for the deployment with bob has 2 countersigned notes
    And bob holds the same contract as provider, with those notes countersigned
    When alice has run `dms deployment shutdown <deployment>`
    Then within 20 seconds the deployment's contract is closed with its invoice countersigned

  Scenario: At the end both ledgers agree with the invoice, and the chain verifies
    Given the ledgers of alice and bob are noted
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [spin=3s]}
      contract:
        interval: 1s
      """
    Then within 20 seconds the deployment's contract is closed with its invoice countersigned
    And within 20 seconds alice paid and bob received the amount owed under the deployment's contract
    When alice verifies the deployment's contract
    Then the command succeeds
    And the output contains "countersigned"
    When alice runs `dms deployment usage <deployment>`
    Then the command succeeds
    And the output contains "total"

  Scenario: A chain with a changed amount is refused by verify
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [spin=2s]}
      contract:
        interval: 1s
      """
    And within 20 seconds the deployment's contract is closed with its invoice countersigned
    And alice has saved the chain of the deployment's contract as "chain.json"
    When alice runs `dms contract verify --file chain.json`
    Then the command succeeds
    When the amount of the last note in "chain.json" is raised by 0.000001, its hash recomputed
    And alice runs `dms contract verify --file chain.json`
    Then the command fails with exit code 1
    And the error says "does not verify"
    And the error is one line

  Scenario: A deployment whose budget runs out is stopped
    Given alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [spin=60s]}
      contract:
        interval: 1s
        budget: 0.001
      """
    Then within 40 seconds the deployment has ended with the reason "budget exhausted"
    And within 20 seconds bob's contract for the deployment is stopped with the reason "budget exhausted"
    And the amount alice owes under the deployment's contract is at most 0.001

  Scenario: A provider priced above the cap does not win
    Given bob charges "cpu=10" per hour for this scenario
    When alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [spin=1s]}
      contract:
        max_price: 1
      """
    Then within 20 seconds the deployment is queued because of "price" on bob
