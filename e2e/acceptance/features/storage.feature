@pending
Feature: Storage
  An allocation mounts volumes: a directory of its provider, or a bucket of
  an S3 server, so that a job's inputs come in and its outputs remain after
  it ends. Credentials stay secret.

  Scenario: A task writes its result to an S3 volume
    Given an S3 server with the bucket "results"
    And bob offers 1 CPU to alice's deployments
    And an ensemble whose task writes "done" to /out/result.txt on a volume of the bucket "results"
    When alice deploys it and it completes
    Then the bucket "results" holds "result.txt" with "done"

  Scenario: A task reads its input from an S3 volume
    Given an S3 server with the bucket "inputs" holding "numbers.txt"
    And bob offers 1 CPU to alice's deployments
    And an ensemble whose task prints /in/numbers.txt from a read-only volume of the bucket "inputs"
    When alice deploys it and it completes
    Then its logs hold the content of "numbers.txt"

  Scenario: A local volume keeps a service's data across a restart of its allocation
    Given bob offers 1 CPU to alice's deployments
    And a service that appends a line to /data/log on a local volume each time it starts
    When the service is restarted
    Then /data/log holds two lines

  Scenario: The credentials of a volume never appear in status, logs or the stored ensemble
    Given an S3 server with the bucket "results"
    And a deployment with a volume of the bucket "results" and its secret key
    When alice runs `dms -o json deployment status <deployment>`
    Then the output does not contain the secret key

  Scenario: A volume that cannot be mounted fails the allocation with the reason
    Given bob offers 1 CPU to alice's deployments
    And an ensemble with a volume of a bucket no server holds
    When alice deploys it
    Then the allocation fails with a reason naming the bucket
