Feature: Capability model
  A provider offers part of its machine (CPU, memory, disk, GPUs) and dms
  accounts for it: available, onboarded, allocated, reserved, free. A job's
  needs are compared with what each provider offers, and a job that fits
  nowhere says why, per provider.

  Background:
    Given the node alice is running with nothing onboarded

  Scenario: A provider onboards part of its machine
    When alice runs `dms onboard --cpu 1 --ram 512MiB --disk 1GiB`
    Then the command succeeds
    And the output contains "cpu 1, ram 512MiB, disk 1GiB"
    And alice's node has cpu 1, ram 512MiB and disk 1GiB onboarded and free

  Scenario: Onboarding more than the machine has is refused with the amount available
    When alice runs `dms onboard --ram 100TiB`
    Then it is refused with "exceeds available"
    And the error names the memory available on alice's machine

  Scenario: Onboarding again changes only what is given, in place
    Given alice has run `dms onboard --cpu 1 --ram 512MiB --disk 1GiB`
    When alice runs `dms onboard --ram 256MiB`
    Then the command succeeds
    And the error output is empty
    And alice's node has cpu 1, ram 256MiB and disk 1GiB onboarded

  Scenario Outline: A malformed amount is a usage error
    When alice runs `dms onboard <flags>`
    Then it is a usage error saying "<error>"

    Examples:
      | flags          | error                            |
      | --ram '4 GB'   | --ram: "4 GB" is not a size      |
      | --cpu -1       | --cpu: "-1" is not a CPU amount  |
      | --ram 1e400    | --ram: "1e400" is not a size     |
      | --gpu x:1GiB   | --gpu: "x:1GiB" is not a GPU     |
      |                | nothing to onboard               |

  Scenario: Offboarding withdraws everything, once
    Given alice has run `dms onboard --cpu 1`
    When alice runs `dms offboard`
    Then the command succeeds
    And the output contains "offboarded: cpu 1"
    When alice runs `dms offboard`
    Then it is refused with "not onboarded"

  Scenario: A job needing more than any provider offers waits and names the resource
    Given bob offers 0.5 CPU to alice's deployments
    And alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        big:
          executor: wasm
          resources: {cpu: 1.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=never]}
      """
    Then within 20 seconds the deployment is queued because of "resource" on bob
    When alice runs `dms deployment status <deployment>`
    Then the output contains "WHY NOT"
    And the output contains "cpu"

  Scenario: A job for an executor no provider offers waits and names the executor
    Given gina offers 1 CPU to alice's deployments, with the vm executor off
    And alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        web:
          executor: vm
          resources: {cpu: 0.8, ram: 64MiB}
          execution: {initrd: workload.wasm, cmd: [/workload, print=never]}
      """
    Then within 20 seconds the deployment is queued because of "executor" on gina
