"""Evaluation: metrics checked against trusted libraries (COCO mAP in 03, drift statistics in 07)."""
